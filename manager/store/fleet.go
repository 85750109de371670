package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
	jsonv2 "github.com/go-json-experiment/json"
)

// CreateArea inserts a; the caller sets its ID and times. A duplicate code
// is fleet.ErrAreaExists.
func (db *DB) CreateArea(ctx context.Context, a *fleet.Area) error {
	_, err := db.w.ExecContext(ctx,
		`INSERT INTO areas (id, code, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
		int64(a.ID), a.Code, a.Name, millis(a.CreatedAt), millis(a.UpdatedAt))
	if isUnique(err, "areas.code") {
		return fleet.ErrAreaExists
	}
	if err != nil {
		return fmt.Errorf("store: create area: %w", err)
	}
	return nil
}

const areaCols = `id, code, name, created_at, updated_at`

func scanArea(sc scanner) (fleet.Area, error) {
	var (
		a                  fleet.Area
		id                 int64
		created, updatedAt sql.NullInt64
	)
	if err := sc.Scan(&id, &a.Code, &a.Name, &created, &updatedAt); err != nil {
		return fleet.Area{}, err
	}
	a.ID = ids.ID(id)
	a.CreatedAt = fromMillis(created)
	a.UpdatedAt = fromMillis(updatedAt)
	return a, nil
}

// Areas returns one page of areas, oldest first (so that the default area,
// created first, leads), and the total number of areas.
func (db *DB) Areas(ctx context.Context, p paging.Page) ([]fleet.Area, int, error) {
	return listPage(ctx, db, "list areas", `SELECT COUNT(*) FROM areas`, `SELECT `+areaCols+` FROM areas ORDER BY id ASC`, nil, p, scanArea)
}

// Area returns the area with id, or fleet.ErrAreaNotFound.
func (db *DB) Area(ctx context.Context, id ids.ID) (fleet.Area, error) {
	return getOne(ctx, db, fleet.ErrAreaNotFound, "get area", scanArea, `SELECT `+areaCols+` FROM areas WHERE id = ?`, int64(id))
}

// DeleteArea removes the area with id: fleet.ErrAreaNotFound if there is
// none, fleet.ErrAreaInUse while a server or a join token refers to it.
func (db *DB) DeleteArea(ctx context.Context, id ids.ID) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		var exists, inUse bool
		err := tx.QueryRowContext(ctx, `SELECT
			EXISTS (SELECT 1 FROM areas WHERE id = ?1),
			EXISTS (SELECT 1 FROM servers WHERE area_id = ?1)
			OR EXISTS (SELECT 1 FROM join_tokens WHERE area_id = ?1)`, int64(id)).Scan(&exists, &inUse)
		switch {
		case err != nil:
			return err
		case !exists:
			return fleet.ErrAreaNotFound
		case inUse:
			return fleet.ErrAreaInUse
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM areas WHERE id = ?`, int64(id))
		if isForeignKey(err) { // the schema's ON DELETE RESTRICT, as a backstop
			return fleet.ErrAreaInUse
		}
		return err
	})
	if errors.Is(err, fleet.ErrAreaNotFound) || errors.Is(err, fleet.ErrAreaInUse) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: delete area: %w", err)
	}
	return nil
}

// CreateServer inserts s; the caller sets its ID and times. AreaName is
// ignored; an empty AgentStatus is stored as fleet.StatusPending; the
// hostname column is taken from s.Facts.Hostname. A duplicate ManagerIP is
// fleet.ErrServerExists and an AreaID that names no area is
// fleet.ErrAreaNotFound.
func (db *DB) CreateServer(ctx context.Context, s *fleet.Server) error {
	facts, err := json.Marshal(s.Facts)
	if err != nil {
		return fmt.Errorf("store: create server: encode facts: %w", err)
	}
	status := s.AgentStatus
	if status == "" {
		status = fleet.StatusPending
	}
	_, err = db.w.ExecContext(ctx, `INSERT INTO servers (
			id, area_id, manager_ip, data_ip, ssh_port, account, program_dir, data_dir,
			cpu_info, cpu_type, agent_status, agent_version, hostname, last_seen, facts,
			cert_serial, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		int64(s.ID), nullID(s.AreaID), s.ManagerIP, s.DataIP, s.SSHPort, s.Account, s.ProgramDir, s.DataDir,
		s.CPUInfo, s.CPUType, string(status), s.AgentVersion, s.Facts.Hostname, millis(s.LastSeen), string(facts),
		s.CertSerial, millis(s.CreatedAt), millis(s.UpdatedAt))
	switch {
	case isUnique(err, "servers.manager_ip"):
		return fleet.ErrServerExists
	case isForeignKey(err): // area_id is the table's only foreign key
		return fleet.ErrAreaNotFound
	case err != nil:
		return fmt.Errorf("store: create server: %w", err)
	}
	return nil
}

const serverCols = `s.id, s.area_id, COALESCE(a.name, ''), s.manager_ip, s.data_ip, s.ssh_port,
	s.account, s.program_dir, s.data_dir, s.cpu_info, s.cpu_type, s.agent_status, s.agent_version,
	s.hostname, s.last_seen, s.facts, s.cert_serial, s.created_at, s.updated_at,
	s.ssh_password IS NOT NULL, s.ssh_private_key IS NOT NULL`

const serverFrom = ` FROM servers s LEFT JOIN areas a ON a.id = s.area_id`

func scanServer(sc scanner) (fleet.Server, error) {
	var (
		s                          fleet.Server
		id                         int64
		areaID                     sql.NullInt64
		status, hostname, facts    string
		lastSeen, created, updated sql.NullInt64
	)
	err := sc.Scan(&id, &areaID, &s.AreaName, &s.ManagerIP, &s.DataIP, &s.SSHPort,
		&s.Account, &s.ProgramDir, &s.DataDir, &s.CPUInfo, &s.CPUType, &status, &s.AgentVersion,
		&hostname, &lastSeen, &facts, &s.CertSerial, &created, &updated,
		&s.HasPassword, &s.HasPrivateKey)
	if err != nil {
		return fleet.Server{}, err
	}
	if facts != "" {
		// encoding/json/v2's decoder (its prototype module): a page of 100
		// servers decodes its facts in a third of v1's time, with one
		// allocation per server instead of fourteen (GET /server at fleet
		// size). Facts were written by v1's Marshal: exact member names, no
		// duplicates, which v2 reads the same.
		if err := jsonv2.Unmarshal([]byte(facts), &s.Facts); err != nil {
			return fleet.Server{}, fmt.Errorf("decode facts of server %d: %w", id, err)
		}
	}
	// Until the first heartbeat the hostname given at enrollment is all we know.
	if s.Facts.Hostname == "" {
		s.Facts.Hostname = hostname
	}
	s.ID = ids.ID(id)
	s.AreaID = fromNullID(areaID)
	s.AgentStatus = fleet.AgentStatus(status)
	s.LastSeen = fromMillis(lastSeen)
	s.CreatedAt = fromMillis(created)
	s.UpdatedAt = fromMillis(updated)
	return s, nil
}

// Server returns the server with id, its AreaName filled, or
// fleet.ErrServerNotFound.
func (db *DB) Server(ctx context.Context, id ids.ID) (fleet.Server, error) {
	return getOne(ctx, db, fleet.ErrServerNotFound, "get server", scanServer, `SELECT `+serverCols+serverFrom+` WHERE s.id = ?`, int64(id))
}

// CertSerial returns the serial of the server's current agent
// certificate, or fleet.ErrServerNotFound.
func (db *DB) CertSerial(ctx context.Context, id ids.ID) (string, error) {
	return getOne(ctx, db, fleet.ErrServerNotFound, "get certificate serial", func(sc scanner) (string, error) {
		var serial string
		err := sc.Scan(&serial)
		return serial, err
	}, `SELECT cert_serial FROM servers WHERE id = ?`, int64(id))
}

// Servers returns one page of the servers that match f, newest first, and
// how many match in all.
func (db *DB) Servers(ctx context.Context, f fleet.ServerFilter, p paging.Page) ([]fleet.Server, int, error) {
	var (
		conds []string
		args  []any
	)
	if !f.AreaID.IsZero() {
		conds = append(conds, `s.area_id = ?`)
		args = append(args, int64(f.AreaID))
	}
	if f.HostnamePrefix != "" {
		// A range, so that the servers_hostname index serves it (LIKE
		// would not: it ignores case and has wildcards).
		conds = append(conds, `s.hostname >= ? AND s.hostname < ?`)
		args = append(args, f.HostnamePrefix, f.HostnamePrefix+"\U0010FFFF")
	}
	// The status is decided by the live set the caller passes, not by the
	// stored column, which lags by up to one presence flush.
	live := make([]int64, len(f.Live))
	for i, id := range f.Live {
		live[i] = int64(id)
	}
	liveJSON, err := json.Marshal(live)
	if err != nil {
		return nil, 0, fmt.Errorf("store: list servers: %w", err)
	}
	switch f.Status {
	case "":
	case fleet.StatusOnline:
		conds = append(conds, `s.id IN (SELECT value FROM json_each(?))`)
		args = append(args, string(liveJSON))
	case fleet.StatusOffline:
		conds = append(conds, `s.cert_serial <> '' AND s.id NOT IN (SELECT value FROM json_each(?))`)
		args = append(args, string(liveJSON))
	case fleet.StatusPending:
		conds = append(conds, `s.cert_serial = ''`)
	default:
		return nil, 0, fmt.Errorf("store: list servers: unknown status %q", f.Status)
	}
	where := ""
	if len(conds) > 0 {
		where = ` WHERE ` + strings.Join(conds, ` AND `)
	}

	// The page's ids come from an index (servers_id, or the filter's), so
	// that a page far down skips small index entries, not whole rows.
	return listPage(ctx, db, "list servers", `SELECT COUNT(*) FROM servers s`+where,
		`SELECT `+serverCols+serverFrom+` WHERE s.id IN (SELECT s.id FROM servers s`+where+` ORDER BY s.id DESC LIMIT ? OFFSET ?) ORDER BY s.id DESC`,
		args, p, scanServer)
}

// DeleteServer removes the server with id, or returns fleet.ErrServerNotFound.
// In the same transaction its certificate serial, if it has one, is recorded
// as revoked at now; join tokens bound to it, and the node cleanups queued
// for its agent, are deleted with it (ON DELETE CASCADE).
func (db *DB) DeleteServer(ctx context.Context, id ids.ID, now time.Time) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		var serial string
		err := tx.QueryRowContext(ctx, `SELECT cert_serial FROM servers WHERE id = ?`, int64(id)).Scan(&serial)
		if errors.Is(err, sql.ErrNoRows) {
			return fleet.ErrServerNotFound
		}
		if err != nil {
			return err
		}
		var inUse bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM cluster_nodes WHERE server_id = ?)`, int64(id)).Scan(&inUse); err != nil {
			return err
		}
		if inUse {
			return fleet.ErrServerInUse
		}
		if err := revokeSerial(ctx, tx, serial, id, now); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM servers WHERE id = ?`, int64(id))
		return err
	})
	if errors.Is(err, fleet.ErrServerNotFound) || errors.Is(err, fleet.ErrServerInUse) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: delete server: %w", err)
	}
	return nil
}

// revokeSerial records serial, when not empty, as revoked; a serial revoked
// before keeps its first record.
func revokeSerial(ctx context.Context, tx *sql.Tx, serial string, server ids.ID, now time.Time) error {
	if serial == "" {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO revoked_certs (serial, server_id, revoked_at) VALUES (?, ?, ?)
		ON CONFLICT (serial) DO NOTHING`, serial, int64(server), millis(now))
	return err
}

// CertRevoked reports whether the certificate with this hex serial has been
// revoked.
func (db *DB) CertRevoked(ctx context.Context, serial string) (bool, error) {
	var revoked bool
	err := db.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM revoked_certs WHERE serial = ?)`, serial).Scan(&revoked)
	if err != nil {
		return false, fmt.Errorf("store: check revoked certificate: %w", err)
	}
	return revoked, nil
}

// SavePresence applies batch in one transaction: each update sets the agent
// status (unless empty) and last seen time (unless zero) and, when Facts is
// not nil, the facts, agent version and hostname. Updates for servers that
// no longer exist are skipped.
func (db *DB) SavePresence(ctx context.Context, batch []fleet.Presence) error {
	if len(batch) == 0 {
		return nil
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		const set = `UPDATE servers SET
			agent_status = COALESCE(NULLIF(?, ''), agent_status),
			last_seen = COALESCE(?, last_seen)`
		plain, err := tx.PrepareContext(ctx, set+` WHERE id = ?`)
		if err != nil {
			return err
		}
		defer plain.Close()
		var withFacts *sql.Stmt // prepared on first use
		for _, u := range batch {
			if u.Facts == nil {
				if _, err := plain.ExecContext(ctx, string(u.Status), millis(u.LastSeen), int64(u.ServerID)); err != nil {
					return fmt.Errorf("server %d: %w", u.ServerID, err)
				}
				continue
			}
			facts, err := json.Marshal(u.Facts)
			if err != nil {
				return fmt.Errorf("server %d: encode facts: %w", u.ServerID, err)
			}
			if withFacts == nil {
				withFacts, err = tx.PrepareContext(ctx, set+`, facts = ?, agent_version = ?, hostname = ? WHERE id = ?`)
				if err != nil {
					return err
				}
				defer withFacts.Close()
			}
			_, err = withFacts.ExecContext(ctx, string(u.Status), millis(u.LastSeen),
				string(facts), u.Facts.AgentVersion, u.Facts.Hostname, int64(u.ServerID))
			if err != nil {
				return fmt.Errorf("server %d: %w", u.ServerID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: save presence: %w", err)
	}
	return nil
}

// MarkAllOffline sets every online server offline. Presence is not an edit
// of the server record, so updated_at, and with it now, is left alone.
func (db *DB) MarkAllOffline(ctx context.Context, now time.Time) error {
	_, err := db.w.ExecContext(ctx, `UPDATE servers SET agent_status = 'offline' WHERE agent_status = 'online'`)
	if err != nil {
		return fmt.Errorf("store: mark all offline: %w", err)
	}
	return nil
}

// AreaByCode returns the area with code, or fleet.ErrAreaNotFound.
func (db *DB) AreaByCode(ctx context.Context, code string) (fleet.Area, error) {
	return db.areaWhere(ctx, `code = ?`, code)
}

// AreaByName returns the oldest area called name, or fleet.ErrAreaNotFound.
func (db *DB) AreaByName(ctx context.Context, name string) (fleet.Area, error) {
	return db.areaWhere(ctx, `name = ?`, name)
}

func (db *DB) areaWhere(ctx context.Context, cond string, arg any) (fleet.Area, error) {
	return getOne(ctx, db, fleet.ErrAreaNotFound, "find area", scanArea, `SELECT `+areaCols+` FROM areas WHERE `+cond+` ORDER BY id LIMIT 1`, arg)
}

// SetServerSecrets replaces the sealed SSH credentials kept for the server
// with id (nil fields: none), or returns fleet.ErrServerNotFound. The store
// never sees them unsealed.
func (db *DB) SetServerSecrets(ctx context.Context, id ids.ID, sec fleet.SealedSecrets) error {
	res, err := db.w.ExecContext(ctx, `UPDATE servers SET ssh_password = ?, ssh_private_key = ?, ssh_passphrase = ? WHERE id = ?`,
		nullBytes(sec.Password), nullBytes(sec.PrivateKey), nullBytes(sec.Passphrase), int64(id))
	if err == nil {
		err = mustAffect(res, fleet.ErrServerNotFound)
	}
	if errors.Is(err, fleet.ErrServerNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: set server secrets: %w", err)
	}
	return nil
}

// ServerSecrets returns the sealed SSH credentials kept for the server with
// id, or fleet.ErrServerNotFound.
func (db *DB) ServerSecrets(ctx context.Context, id ids.ID) (fleet.SealedSecrets, error) {
	return getOne(ctx, db, fleet.ErrServerNotFound, "get server secrets", func(sc scanner) (fleet.SealedSecrets, error) {
		var sec fleet.SealedSecrets
		err := sc.Scan(&sec.Password, &sec.PrivateKey, &sec.Passphrase)
		return sec, err
	}, `SELECT ssh_password, ssh_private_key, ssh_passphrase FROM servers WHERE id = ?`, int64(id))
}

// nullBytes stores an empty secret as NULL, so "kept or not" is one IS NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}
