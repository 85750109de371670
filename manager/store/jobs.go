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
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/manager/paging"
)

var _ deploy.Store = (*DB)(nil)

// CreateJob inserts the job with its steps and sets the nodes deploying, in
// one transaction; deploy.ErrNodeUnavailable, writing nothing, when one of
// them is deploying already.
func (db *DB) CreateJob(ctx context.Context, j deploy.Job, steps []deploy.Step, nodeIDs []ids.ID, now time.Time) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		var busy, held []string
		for _, id := range nodeIDs {
			var (
				state, nodeDir, ip string
				holder             sql.NullInt64
			)
			err := tx.QueryRowContext(ctx, `SELECT deploy_state, node_dir, manager_ip, held_by FROM cluster_nodes WHERE id = ?`, int64(id)).
				Scan(&state, &nodeDir, &ip, &holder)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: %s", cluster.ErrNodeNotFound, id)
			}
			if err != nil {
				return err
			}
			label := fmt.Sprintf("%s on %s (node %s)", nodeDir, ip, id)
			switch {
			case state == cluster.DeployDeploying:
				busy = append(busy, label)
			case holder.Valid:
				held = append(held, fmt.Sprintf("%s by job %d", label, holder.Int64))
			}
		}
		if len(busy) > 0 {
			return fmt.Errorf("%w: already deploying: %s", deploy.ErrNodeUnavailable, strings.Join(busy, ", "))
		}
		if len(held) > 0 {
			return fmt.Errorf("%w: %s; wait for it to finish", deploy.ErrNodeHeld, strings.Join(held, ", "))
		}
		errData, err := jobErrorData(j)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO jobs (id, type, cluster_id, server_id, node_id, state, reason, code, error_data,
			created_by, created_at, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			int64(j.ID), j.Type, nullID(j.ClusterID), nullID(j.ServerID), nullID(j.NodeID), j.State, j.Reason, j.Code, errData,
			j.CreatedBy, millis(j.CreatedAt), millis(j.StartedAt), millis(j.FinishedAt))
		if isForeignKey(err) {
			return fmt.Errorf("%w: %s", cluster.ErrClusterNotFound, j.ClusterID)
		}
		if err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO job_steps (id, job_id, node_id, name, state, detail, started_at, finished_at, release_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, s := range steps {
			if _, err := stmt.ExecContext(ctx, int64(s.ID), int64(s.JobID), int64(s.NodeID), s.Name, s.State, s.Detail,
				millis(s.StartedAt), millis(s.FinishedAt), nullID(s.ReleaseID)); err != nil {
				return err
			}
		}
		for _, id := range nodeIDs {
			q := `UPDATE cluster_nodes SET held_by = ?, updated_at = ? WHERE id = ?`
			args := []any{int64(j.ID), millis(now), int64(id)}
			if j.Deploys() {
				q = `UPDATE cluster_nodes SET held_by = ?, updated_at = ?, deploy_state = ? WHERE id = ?`
				args = []any{int64(j.ID), millis(now), cluster.DeployDeploying, int64(id)}
			}
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return err
			}
		}
		return nil
	})
	return jobErr("create job", err)
}

func jobErr(what string, err error) error {
	if err == nil {
		return nil
	}
	for _, e := range []error{deploy.ErrNodeUnavailable, deploy.ErrNodeHeld, deploy.ErrJobNotFound, cluster.ErrNodeNotFound, cluster.ErrClusterNotFound} {
		if errors.Is(err, e) {
			return err
		}
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// jobErrorData is the JSON of the job's error data, or "".
func jobErrorData(j deploy.Job) (string, error) {
	if len(j.ErrorData) == 0 {
		return "", nil
	}
	b, err := json.Marshal(j.ErrorData)
	if err != nil {
		return "", fmt.Errorf("error data of job %s: %w", j.ID, err)
	}
	return string(b), nil
}

// UpdateJob writes the job's state, reason, error code and data, and
// times; a finished job lets its nodes go.
func (db *DB) UpdateJob(ctx context.Context, j deploy.Job) error {
	errData, err := jobErrorData(j)
	if err != nil {
		return jobErr("update job", err)
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ?, reason = ?, code = ?, error_data = ?, started_at = ?, finished_at = ?
			WHERE id = ?`, j.State, j.Reason, j.Code, errData, millis(j.StartedAt), millis(j.FinishedAt), int64(j.ID))
		if err == nil {
			err = mustAffect(res, deploy.ErrJobNotFound)
		}
		if err != nil || !j.Done() {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE cluster_nodes SET held_by = NULL WHERE held_by = ?`, int64(j.ID))
		return err
	})
	return jobErr("update job", err)
}

// UpdateStep writes the step's state, detail, times and rollout figures.
func (db *DB) UpdateStep(ctx context.Context, s deploy.Step) error {
	var healthy sql.NullBool
	if s.Healthy != nil {
		healthy = sql.NullBool{Bool: *s.Healthy, Valid: true}
	}
	res, err := db.w.ExecContext(ctx, `UPDATE job_steps SET state = ?, detail = ?, started_at = ?, finished_at = ?,
			release_id = ?, pid_before = ?, pid_after = ?, healthy = ?, duration_ms = ? WHERE id = ?`,
		s.State, s.Detail, millis(s.StartedAt), millis(s.FinishedAt), nullID(s.ReleaseID), s.PIDBefore, s.PIDAfter, healthy,
		s.Duration.Milliseconds(), int64(s.ID))
	if err == nil {
		err = mustAffect(res, deploy.ErrJobNotFound)
	}
	return jobErr("update job step", err)
}

const jobCols = `id, type, cluster_id, server_id, node_id, state, reason, code, error_data, created_by, created_at, started_at, finished_at`

func scanJob(sc scanner) (deploy.Job, error) {
	var (
		j                          deploy.Job
		id                         int64
		cid, sid, nid              sql.NullInt64
		errData                    string
		created, started, finished sql.NullInt64
	)
	if err := sc.Scan(&id, &j.Type, &cid, &sid, &nid, &j.State, &j.Reason, &j.Code, &errData, &j.CreatedBy, &created, &started, &finished); err != nil {
		return deploy.Job{}, err
	}
	if errData != "" {
		if err := json.Unmarshal([]byte(errData), &j.ErrorData); err != nil {
			return deploy.Job{}, fmt.Errorf("error data of job %d: %w", id, err)
		}
	}
	j.ID, j.ClusterID, j.ServerID, j.NodeID = ids.ID(id), fromNullID(cid), fromNullID(sid), fromNullID(nid)
	j.CreatedAt, j.StartedAt, j.FinishedAt = fromMillis(created), fromMillis(started), fromMillis(finished)
	return j, nil
}

// Job returns the job with id, or deploy.ErrJobNotFound.
func (db *DB) Job(ctx context.Context, id ids.ID) (deploy.Job, error) {
	return getOne(ctx, db, deploy.ErrJobNotFound, "get job", scanJob, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, int64(id))
}

// Jobs returns one page of jobs, newest first, of the cluster (all when
// clusterID is zero), and the total.
func (db *DB) Jobs(ctx context.Context, clusterID ids.ID, p paging.Page) ([]deploy.Job, int, error) {
	if clusterID.IsZero() {
		return listPage(ctx, db, "list jobs", `SELECT COUNT(*) FROM jobs`,
			`SELECT `+jobCols+` FROM jobs ORDER BY id DESC`, nil, p, scanJob)
	}
	return listPage(ctx, db, "list jobs", `SELECT COUNT(*) FROM jobs WHERE cluster_id = ?`,
		`SELECT `+jobCols+` FROM jobs WHERE cluster_id = ? ORDER BY id DESC`, []any{int64(clusterID)}, p, scanJob)
}

func scanStep(sc scanner) (deploy.Step, error) {
	var (
		s                 deploy.Step
		id, jid, nid      int64
		started, finished sql.NullInt64
		release           sql.NullInt64
		healthy           sql.NullBool
		durationMs        int64
	)
	if err := sc.Scan(&id, &jid, &nid, &s.Name, &s.State, &s.Detail, &started, &finished, &release, &s.PIDBefore, &s.PIDAfter,
		&healthy, &durationMs); err != nil {
		return deploy.Step{}, err
	}
	s.ID, s.JobID, s.NodeID, s.ReleaseID = ids.ID(id), ids.ID(jid), ids.ID(nid), fromNullID(release)
	s.StartedAt, s.FinishedAt = fromMillis(started), fromMillis(finished)
	if healthy.Valid {
		s.Healthy = &healthy.Bool
	}
	s.Duration = time.Duration(durationMs) * time.Millisecond
	return s, nil
}

// JobSteps returns the job's steps in the order they were created.
func (db *DB) JobSteps(ctx context.Context, jobID ids.ID) ([]deploy.Step, error) {
	return queryAll(ctx, db, "list job steps", scanStep,
		`SELECT id, job_id, node_id, name, state, detail, started_at, finished_at, release_id, pid_before, pid_after, healthy, duration_ms
		FROM job_steps WHERE job_id = ? ORDER BY id`, int64(jobID))
}

// FailUnfinishedJobs fails every pending or running job with reason, and
// their running steps, cancels their pending steps ("not run: " + reason)
// and fails every node left deploying, in one transaction.
func (db *DB) FailUnfinishedJobs(ctx context.Context, reason string, now time.Time) ([]deploy.Job, error) {
	var out []deploy.Job
	err := db.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE state IN ('pending', 'running') ORDER BY id`)
		if err != nil {
			return err
		}
		for rows.Next() {
			j, err := scanJob(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, j)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			j := &out[i]
			j.State, j.Reason, j.FinishedAt = deploy.JobFailed, reason, now
			if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ?, reason = ?, finished_at = ? WHERE id = ?`,
				j.State, j.Reason, millis(now), int64(j.ID)); err != nil {
				return err
			}
			// The step that was running failed; those that never ran are
			// cancelled, as when a job fails on its own.
			if _, err := tx.ExecContext(ctx, `UPDATE job_steps SET state = ?, detail = ?, finished_at = ?
				WHERE job_id = ? AND state = 'running'`, deploy.StepFailed, reason, millis(now), int64(j.ID)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE job_steps SET state = ?, detail = ?, finished_at = ?
				WHERE job_id = ? AND state = 'pending'`, deploy.StepCancelled, "not run: "+reason, millis(now), int64(j.ID)); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE cluster_nodes SET held_by = NULL WHERE held_by IS NOT NULL`); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE cluster_nodes SET deploy_state = ?, updated_at = ? WHERE deploy_state = ?`,
			cluster.DeployFailed, millis(now), cluster.DeployDeploying)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: fail unfinished jobs: %w", err)
	}
	return out, nil
}

// SetNodeStates sets the node's deploy and run states; an empty one is
// left as it is. cluster.ErrNodeNotFound when the node is gone.
func (db *DB) SetNodeStates(ctx context.Context, nodeID ids.ID, deployState, runState string, now time.Time) error {
	res, err := db.w.ExecContext(ctx, `UPDATE cluster_nodes SET
			deploy_state = CASE WHEN ? = '' THEN deploy_state ELSE ? END,
			run_state = CASE WHEN ? = '' THEN run_state ELSE ? END,
			updated_at = ?
		WHERE id = ?`, deployState, deployState, runState, runState, millis(now), int64(nodeID))
	if err == nil {
		err = mustAffect(res, cluster.ErrNodeNotFound)
	}
	return jobErr("set node states", err)
}
