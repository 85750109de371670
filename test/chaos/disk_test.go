package chaos

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// TestManagerDiskFull runs the manager on a 32 MiB tmpfs data dir and
// fills it: an upload larger than the free space, then API writes on a
// full disk. Each failure must be a clear error (HTTP 507, "disk full"),
// nothing half-written may stay behind, acknowledged writes survive, the
// database stays intact, and the manager keeps serving and takes writes
// again as soon as space returns.
func TestManagerDiskFull(t *testing.T) {
	chaosTest(t)
	t.Parallel()
	data := filepath.Join(mountTmpfs(t, "32m"), "data")
	m := testenv.StartManagerProcess(t, managerBin, testenv.ManagerProcessOptions{DataDir: data})
	c := m.Client(t)

	t.Run("upload", func(t *testing.T) {
		before, free := files(t, data), freeBytes(t, data)
		big := nodePackage(t, "1.0", false, nil, workloads.Entry{Name: "blob", Random: 48 << 20})
		env, status, err := c.Upload(big)
		if err != nil {
			t.Fatalf("upload of 48 MiB to a disk with %.1f MiB free: no answer: %v", float64(free)/(1<<20), err)
		}
		t.Logf("upload of 48 MiB with %.1f MiB free: HTTP %d code %d %s", float64(free)/(1<<20), status, env.Code, env.Message)
		expectDiskFull(t, env, status)
		if after := files(t, data); !sameFiles(before, after) {
			t.Errorf("the failed upload left files behind:\nbefore %v\nafter  %v", before, after)
		}
		if got := freeBytes(t, data); got < free-(1<<20) {
			t.Errorf("free space %d bytes after the failed upload, was %d", got, free)
		}
		var list struct {
			Total int `json:"total"`
		}
		c.OK(t, http.MethodGet, "/package", nil, &list)
		if list.Total != 0 {
			t.Errorf("%d packages listed after the failed upload", list.Total)
		}
		// A package that fits goes in.
		c.UploadPackage(t, nodePackage(t, "1.1", false, nil, workloads.Entry{Name: "blob", Random: 4 << 20}))
	})

	t.Run("writes", func(t *testing.T) {
		filler := fill(t, data)
		logFrom := len(m.Log())
		var acked []string
		failures := 0
		for i := 0; i < 2000 && failures < 20; i++ {
			code := fmt.Sprintf("full-%04d", i)
			env, status, err := c.Try(http.MethodPost, "/area", map[string]string{"code": code, "area": code})
			switch {
			case err != nil:
				t.Fatalf("write %d on a full disk: no answer: %v", i, err)
			case status == http.StatusOK && env.Code == 0:
				acked = append(acked, code)
			default:
				failures++
				if failures == 1 {
					t.Logf("first refused write (after %d acknowledged): HTTP %d code %d %s", len(acked), status, env.Code, env.Message)
				}
				expectDiskFull(t, env, status)
			}
		}
		if failures == 0 {
			t.Fatalf("%d writes on a full disk all succeeded", len(acked))
		}
		if !m.Running() {
			t.Fatal("the manager exited on a full disk")
		}
		var areas struct {
			Total int `json:"total"`
		}
		c.OK(t, http.MethodGet, "/area", nil, &areas) // reads go on

		t.Logf("the manager logged %d errors while the disk was full", strings.Count(m.Log()[logFrom:], `"level":"ERROR"`))
		must(t, os.Remove(filler))
		var resumed time.Duration
		resumed = testenv.Eventually(t, 30*time.Second, "writes to succeed once space returned", func() bool {
			env, status, err := c.Try(http.MethodPost, "/area", map[string]string{"code": "after-full", "area": "after-full"})
			return err == nil && status == http.StatusOK && env.Code == 0
		})
		t.Logf("writes succeed again %v after the space returned", resumed.Round(time.Millisecond))
		integrityCheck(t, m.DBPath())

		m.Stop()
		m.Start()
		c = m.Client(t)
		var page struct {
			List []struct {
				Code string `json:"code"`
			} `json:"list"`
		}
		c.OK(t, http.MethodGet, "/area?pageSize=500", nil, &page)
		have := map[string]bool{}
		for _, a := range page.List {
			have[a.Code] = true
		}
		for _, code := range append(acked, "after-full") {
			if !have[code] {
				t.Errorf("acknowledged area %s lost", code)
			}
		}
		t.Logf("on the full disk %d writes were acknowledged and %d refused; every acknowledged one is there after a restart", len(acked), failures)
	})
}

// expectDiskFull checks that a failure says the manager's disk is full.
func expectDiskFull(t testing.TB, env testenv.Envelope, status int) {
	t.Helper()
	if status != http.StatusInsufficientStorage || !strings.Contains(strings.ToLower(env.Message), "disk") {
		t.Errorf("failure on a full disk: HTTP %d code %d %q; want HTTP 507 saying the disk is full", status, env.Code, env.Message)
	}
}

// fill writes a file in dir until the file system is full and returns it.
func fill(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	must(t, err)
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	for len(buf) > 1 { // the last pages too
		buf = buf[:len(buf)/2]
		for {
			if _, err := f.Write(buf); err != nil {
				break
			}
		}
	}
	return p
}

func freeBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	must(t, syscall.Statfs(dir, &st))
	return int64(st.Bavail) * st.Bsize
}

// files lists the files under dir but the database's own, which change
// size as they please.
func files(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), "admq.db") {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func sameFiles(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}
