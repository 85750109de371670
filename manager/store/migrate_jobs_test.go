package store

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/manager/paging"
)

// TestMigrateBootstrapJobs opens a database whose jobs table is from
// before bootstrap jobs (migrations 1-14), with a deployment job and its
// steps: the rebuilt table keeps them, a cluster's deletion still takes
// its jobs and their steps with it (foreign keys are on again), and a job
// of a server, with the code and data of its error, can be stored.
func TestMigrateBootstrapJobs(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "admq.db")
	raw, err := sql.Open("sqlite", path+"?"+writerParams)
	if err != nil {
		t.Fatal(err)
	}
	fsys, _ := fs.Sub(migrations, "migrations")
	p, err := goose.NewProvider(goose.DialectSQLite3, raw, fsys, goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(goMigrations()...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 14); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO clusters (id, name) VALUES (10, 'c1')`,
		`INSERT INTO jobs (id, type, cluster_id, state, reason, created_by, created_at) VALUES (20, 'deploy_cluster', 10, 'failed', 'boom', 'admin', 1700000000000)`,
		`INSERT INTO job_steps (id, job_id, node_id, name, state, detail) VALUES (21, 20, 30, 'transfer', 'succeeded', 'sent')`,
		`INSERT INTO job_steps (id, job_id, node_id, name, state, detail) VALUES (22, 20, 30, 'install', 'failed', 'no space')`,
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	j, steps, err := jobWithSteps(ctx, db, 20)
	if err != nil || j.ClusterID != 10 || !j.ServerID.IsZero() || j.Reason != "boom" || j.Code != 0 || j.ErrorData != nil ||
		len(steps) != 2 || steps[1].Detail != "no space" {
		t.Fatalf("migrated job %+v steps %+v: %v", j, steps, err)
	}

	boot := deploy.Job{ID: 40, Type: deploy.TypeBootstrap, ServerID: 50, State: deploy.JobRunning, CreatedBy: "op", CreatedAt: time.UnixMilli(1700000001000)}
	if err := db.CreateJob(ctx, boot, []deploy.Step{{ID: 41, JobID: 40, Name: "connect", State: deploy.StepRunning}}, nil, boot.CreatedAt); err != nil {
		t.Fatal(err)
	}
	boot.State, boot.Reason, boot.Code = deploy.JobFailed, "SSH authentication failed", 1253
	boot.ErrorData = map[string]any{"step": "connect", "cleanup": "not needed"}
	if err := db.UpdateJob(ctx, boot); err != nil {
		t.Fatal(err)
	}
	got, steps, err := jobWithSteps(ctx, db, 40)
	if err != nil || got.ServerID != 50 || !got.ClusterID.IsZero() || got.Code != 1253 || got.ErrorData["step"] != "connect" ||
		len(steps) != 1 || steps[0].Name != "connect" {
		t.Fatalf("bootstrap job %+v steps %+v: %v", got, steps, err)
	}
	if _, total, _ := db.Jobs(ctx, 0, paging.Page{Num: 1, Size: 10}); total != 2 {
		t.Errorf("all jobs: %d, want 2", total)
	}
	if list, total, _ := db.Jobs(ctx, 10, paging.Page{Num: 1, Size: 10}); total != 1 || list[0].ID != 20 {
		t.Errorf("jobs of cluster 10: %+v", list)
	}
	// A job of nothing is refused.
	if err := db.CreateJob(ctx, deploy.Job{ID: 60, Type: deploy.TypeBootstrap, State: deploy.JobPending}, nil, nil, time.Now()); err == nil {
		t.Error("a job with neither cluster nor server was stored")
	}

	if err := db.DeleteCluster(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Job(ctx, 20); !errors.Is(err, deploy.ErrJobNotFound) {
		t.Errorf("the deleted cluster's job: %v", err)
	}
	var left int
	if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM job_steps WHERE job_id = 20`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d steps of the deleted cluster's job left (%v): foreign keys are off", left, err)
	}
}

func jobWithSteps(ctx context.Context, db *DB, id ids.ID) (deploy.Job, []deploy.Step, error) {
	j, err := db.Job(ctx, id)
	if err != nil {
		return j, nil, err
	}
	steps, err := db.JobSteps(ctx, id)
	return j, steps, err
}
