package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
	s.ssh_password IS NOT NULL, s.ssh_private_key IS NOT NULL, s.row_version`

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
		&s.HasPassword, &s.HasPrivateKey, &s.Version)
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
	where, args, err := serverWhere(f)
	if err != nil {
		return nil, 0, fmt.Errorf("store: list servers: %w", err)
	}
	// The page's ids come from an index (servers_id, or the filter's), so
	// that a page far down skips small index entries, not whole rows.
	return listPage(ctx, db, "list servers", `SELECT COUNT(*) FROM servers s`+where,
		`SELECT `+serverCols+serverFrom+` WHERE s.id IN (SELECT s.id FROM servers s`+where+` ORDER BY s.id DESC LIMIT ? OFFSET ?) ORDER BY s.id DESC`,
		args, p, scanServer)
}

// serverWhere is the WHERE clause, and its arguments, of the servers
// (aliased s) that match f; empty when f matches all.
func serverWhere(f fleet.ServerFilter) (string, []any, error) {
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
	switch f.Status {
	case "":
	case fleet.StatusOnline:
		conds = append(conds, `s.id IN (SELECT value FROM json_each(?))`)
		args = append(args, idsJSON(f.Live))
	case fleet.StatusOffline:
		conds = append(conds, `s.cert_serial <> '' AND s.id NOT IN (SELECT value FROM json_each(?))`)
		args = append(args, idsJSON(f.Live))
	case fleet.StatusPending:
		conds = append(conds, `s.cert_serial = ''`)
	default:
		return "", nil, fmt.Errorf("unknown status %q", f.Status)
	}
	if len(conds) == 0 {
		return "", args, nil
	}
	return ` WHERE ` + strings.Join(conds, ` AND `), args, nil
}

// idsJSON is a JSON array of ids, for json_each.
func idsJSON(list []ids.ID) string {
	b := make([]byte, 0, 2+20*len(list))
	b = append(b, '[')
	for i, id := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(id), 10)
	}
	return string(append(b, ']'))
}

// serverCountsKept bounds the cached totals of server list filters (each
// hostname prefix typed is one).
const serverCountsKept = 256

// serverCountKey is a filter whose total does not depend on the live set.
type serverCountKey struct {
	area     ids.ID
	hostname string
	status   fleet.AgentStatus // "" or pending
}

// serverCount is a total counted at a generation of server_list_gen.
type serverCount struct {
	gen   int64
	total int
}

// stampPagesKept bounds the pages of stamps kept.
const stampPagesKept = 64

// stampPageKey is a page of a filter whose servers do not depend on the
// live set.
type stampPageKey struct {
	area      ids.ID
	hostname  string
	status    fleet.AgentStatus // "" or pending
	num, size int
}

// stampPage is a page of stamps and its total, read at these generations
// of server_list_gen.
type stampPage struct {
	gen, rowsGen, clustersGen int64
	total                     int
	list                      []fleet.ServerStamp
}

// serverStampSelect reads a page's stamps but their clusters.
const serverStampSelect = `SELECT s.id, s.row_version, s.last_seen, s.cert_serial <> '' FROM servers s`

// deployClusters are the names of the clusters with nodes on each server,
// as ClusterNamesOnServers says them, joined by ", ", read at one
// server_list_gen.clusters_gen.
type deployClusters struct {
	gen      int64
	byServer map[ids.ID]string
}

// ServerStamps returns one page of the servers that match f, newest first,
// as stamps (AgentStatus is the stored one), and how many match in all.
// The total of a filter that does not depend on the live set is counted
// once per change of server_list_gen.gen (an insert, a delete, a server's
// area, hostname or enrollment changed), not at every page, and its page
// is read once per change of any server (rows_gen: a presence flush, say).
func (db *DB) ServerStamps(ctx context.Context, f fleet.ServerFilter, p paging.Page) ([]fleet.ServerStamp, int, error) {
	where, args, err := serverWhere(f)
	if err != nil {
		return nil, 0, fmt.Errorf("store: list servers: %w", err)
	}
	var (
		list  []fleet.ServerStamp
		total int
	)
	err = db.read(ctx, func(tx *sql.Tx) error {
		var gen, rowsGen, clustersGen int64
		err := db.txQueryRow(ctx, tx, `SELECT gen, rows_gen, clusters_gen FROM server_list_gen WHERE id = 1`).Scan(&gen, &rowsGen, &clustersGen)
		if err != nil {
			return err
		}
		// A page whose filter does not depend on the live set is kept
		// until a server changes.
		cacheable := f.Status == "" || f.Status == fleet.StatusPending
		key := stampPageKey{area: f.AreaID, hostname: f.HostnamePrefix, status: f.Status, num: p.Num, size: p.Size}
		if c, ok := db.stampPages.Get(key); cacheable && ok && c.gen == gen && c.rowsGen == rowsGen && c.clustersGen == clustersGen {
			list, total = slices.Clone(c.list), c.total
			return nil
		}
		defer func() {
			if err == nil && cacheable {
				// Read in the snapshot the generations were read in.
				db.stampPages.Add(key, &stampPage{gen: gen, rowsGen: rowsGen, clustersGen: clustersGen, total: total, list: slices.Clone(list)})
			}
		}()
		total, err = db.countServers(ctx, tx, gen, f, where, args)
		if err != nil {
			return err
		}
		clusters, err := db.deployClusters(ctx, tx, clustersGen)
		if err != nil {
			return err
		}
		// The page's ids come from an index (servers_id, or the filter's).
		query := serverStampSelect + ` WHERE s.id IN (SELECT s.id FROM servers s` + where + ` ORDER BY s.id DESC LIMIT ? OFFSET ?) ORDER BY s.id DESC`
		list, err = db.stampRows(ctx, tx, query, append(args, p.Size, p.Offset()), clusters, p.Size)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store: list servers: %w", err)
	}
	return list, total, nil
}

// stampRows reads the stamps query selects.
func (db *DB) stampRows(ctx context.Context, tx *sql.Tx, query string, args []any, clusters *deployClusters, size int) ([]fleet.ServerStamp, error) {
	rows, err := db.txQuery(ctx, tx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := make([]fleet.ServerStamp, 0, size)
	for rows.Next() {
		var (
			st       fleet.ServerStamp
			id       int64
			lastSeen sql.NullInt64
		)
		if err := rows.Scan(&id, &st.Version, &lastSeen, &st.Enrolled); err != nil {
			return nil, err
		}
		st.ID, st.LastSeen, st.AgentStatus = ids.ID(id), fromMillis(lastSeen), fleet.StatusOffline
		st.DeployClusters = clusters.byServer[st.ID]
		list = append(list, st)
	}
	return list, rows.Err()
}

// deployClusters returns the clusters on each server at clustersGen, read
// in tx (which saw that generation) unless the cached ones are of it.
func (db *DB) deployClusters(ctx context.Context, tx *sql.Tx, clustersGen int64) (*deployClusters, error) {
	if c := db.clusterNames.Load(); c != nil && c.gen == clustersGen {
		return c, nil
	}
	rows, err := db.txQuery(ctx, tx, `SELECT server_id, group_concat(name, ', ' ORDER BY name) FROM
		(SELECT DISTINCT n.server_id, c.name FROM cluster_nodes n JOIN clusters c ON c.id = n.cluster_id) GROUP BY server_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	c := &deployClusters{gen: clustersGen, byServer: map[ids.ID]string{}}
	for rows.Next() {
		var (
			id    int64
			names string
		)
		if err := rows.Scan(&id, &names); err != nil {
			return nil, err
		}
		c.byServer[ids.ID(id)] = names
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	db.clusterNames.Store(c)
	return c, nil
}

// countServers counts the servers matching f (where, args) in tx, from the
// cache when server_list_gen.gen, read in tx, has not moved since.
func (db *DB) countServers(ctx context.Context, tx *sql.Tx, gen int64, f fleet.ServerFilter, where string, args []any) (int, error) {
	var total int
	if f.Status != "" && f.Status != fleet.StatusPending {
		err := db.txQueryRow(ctx, tx, `SELECT COUNT(*) FROM servers s`+where, args...).Scan(&total)
		return total, err
	}
	key := serverCountKey{area: f.AreaID, hostname: f.HostnamePrefix, status: f.Status}
	if c, ok := db.serverCounts.Get(key); ok && c.gen == gen {
		return c.total, nil
	}
	if err := db.txQueryRow(ctx, tx, `SELECT COUNT(*) FROM servers s`+where, args...).Scan(&total); err != nil {
		return 0, err
	}
	// Counted in the same snapshot as gen was read: right for gen.
	db.serverCounts.Add(key, serverCount{gen: gen, total: total})
	return total, nil
}

// ServersByID returns the servers with these ids that exist, in no
// particular order.
func (db *DB) ServersByID(ctx context.Context, list []ids.ID) ([]fleet.Server, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out, err := queryAll(ctx, db, "get servers", scanServer,
		`SELECT `+serverCols+serverFrom+` WHERE s.id IN (SELECT value FROM json_each(?))`, idsJSON(list))
	if err != nil {
		return nil, err
	}
	return out, nil
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
		if err := db.revokeSerial(ctx, tx, serial, id, now); err != nil {
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
func (db *DB) revokeSerial(ctx context.Context, tx *sql.Tx, serial string, server ids.ID, now time.Time) error {
	if serial == "" {
		return nil
	}
	_, err := db.txExec(ctx, tx, `INSERT INTO revoked_certs (serial, server_id, revoked_at) VALUES (?, ?, ?)
		ON CONFLICT (serial) DO NOTHING`, serial, int64(server), millis(now))
	return err
}

// CertRevoked reports whether the certificate with this hex serial has been
// revoked.
func (db *DB) CertRevoked(ctx context.Context, serial string) (bool, error) {
	var revoked bool
	err := db.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM revoked_certs WHERE serial = ?)`, serial).Scan(&revoked)
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
		var plain, withFacts *sql.Stmt // on first use
		for _, u := range batch {
			var err error
			if u.Facts == nil {
				if plain == nil {
					if plain, err = db.txStmt(ctx, tx, savePresence+` WHERE id = ?`); err != nil {
						return err
					}
				}
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
				if withFacts, err = db.txStmt(ctx, tx, savePresence+`, facts = ?, agent_version = ?, hostname = ? WHERE id = ?`); err != nil {
					return err
				}
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

// savePresence is the start of SavePresence's updates.
const savePresence = `UPDATE servers SET
			agent_status = COALESCE(NULLIF(?, ''), agent_status),
			last_seen = COALESCE(?, last_seen)`

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
