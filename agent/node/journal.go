package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/admq/admq-manager/internal/atomicfile"
)

// journal remembers the last completed operations and their results.
type journal struct {
	path  string
	limit int
	ops   []journalEntry
	index map[string]int // id → position in ops
}

type journalEntry struct {
	ID     string          `json:"id"`
	Kind   string          `json:"kind"`
	Result json.RawMessage `json:"result,omitempty"`
}

func openJournal(path string, limit int) (*journal, error) {
	j := &journal{path: path, limit: limit, index: map[string]int{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return nil, fmt.Errorf("operation journal: %w", err)
	}
	if err := json.Unmarshal(data, &j.ops); err != nil {
		// A damaged journal only costs the at-most-once guarantee for old
		// operations; start a new one rather than refusing to work.
		j.ops = nil
	}
	if len(j.ops) > limit {
		j.ops = j.ops[len(j.ops)-limit:]
	}
	j.reindex()
	return j, nil
}

func (j *journal) reindex() {
	clear(j.index)
	for i, e := range j.ops {
		j.index[e.ID] = i
	}
}

// lookup decodes the recorded result of operation id into out; it reports
// whether the operation is recorded. An id recorded for another kind of
// operation is an error.
func (j *journal) lookup(id, kind string, out any) (bool, error) {
	i, ok := j.index[id]
	if !ok {
		return false, nil
	}
	e := j.ops[i]
	if e.Kind != kind {
		return false, fmt.Errorf("%w: operation %s was a %s, not a %s", ErrConflict, id, e.Kind, kind)
	}
	if out != nil && len(e.Result) > 0 {
		if err := json.Unmarshal(e.Result, out); err != nil {
			return false, fmt.Errorf("operation journal: %w", err)
		}
	}
	return true, nil
}

// record saves a completed operation, dropping the oldest beyond the limit.
func (j *journal) record(id, kind string, result any) error {
	var raw json.RawMessage
	if result != nil {
		b, err := json.Marshal(result)
		if err != nil {
			return err
		}
		raw = b
	}
	j.ops = append(j.ops, journalEntry{ID: id, Kind: kind, Result: raw})
	if len(j.ops) > j.limit {
		j.ops = append([]journalEntry(nil), j.ops[len(j.ops)-j.limit:]...)
	}
	j.reindex()
	data, err := json.Marshal(j.ops)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(j.path, data, 0o600); err != nil {
		return fmt.Errorf("operation journal: %w", err)
	}
	return nil
}
