// Package ids defines the 64-bit snowflake identifiers the manager hands out
// and their JSON form: a decimal string, as the console API carries them.
package ids

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/bwmarrin/snowflake"
)

// ID is a positive 64-bit identifier. The zero ID means "none".
type ID int64

// String returns the decimal form of id.
func (id ID) String() string { return strconv.FormatInt(int64(id), 10) }

// IsZero reports whether id is unset.
func (id ID) IsZero() bool { return id == 0 }

// Parse reads a decimal id. It rejects empty, signed, zero and out-of-range
// values so that a bad id in a request never reaches the store.
func Parse(s string) (ID, error) {
	if s == "" {
		return 0, fmt.Errorf("id is empty")
	}
	if s[0] < '1' || s[0] > '9' { // no sign, no leading zero: one spelling per id
		return 0, fmt.Errorf("id %q is not a positive decimal number", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("id %q is not a positive decimal number", s)
	}
	return ID(n), nil
}

// MarshalJSON writes id as a JSON string, as the seed documents (JavaScript
// clients lose precision on numbers above 2^53); the zero ID is null.
func (id ID) MarshalJSON() ([]byte, error) {
	if id == 0 {
		return []byte("null"), nil
	}
	return []byte(`"` + id.String() + `"`), nil
}

// UnmarshalJSON accepts a JSON string or a JSON number.
func (id *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*id = 0
		return nil
	}
	var s string
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else {
		s = string(b)
	}
	v, err := Parse(s)
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// Generator hands out unique, time-ordered ids for one manager node.
type Generator struct {
	node *snowflake.Node
}

// NewGenerator returns a generator for the given node number (0–1023).
// Managers that share a database must use distinct node numbers.
func NewGenerator(node int64) (*Generator, error) {
	n, err := snowflake.NewNode(node)
	if err != nil {
		return nil, fmt.Errorf("snowflake node %d: %w", node, err)
	}
	return &Generator{node: n}, nil
}

// Next returns a new id.
func (g *Generator) Next() ID { return ID(g.node.Generate().Int64()) }
