package node

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/admq/admq-manager/internal/archive"
	"github.com/admq/admq-manager/internal/atomicfile"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/internal/manifest"
)

// The agent runs only what a package declares: a deploy's command, its
// environment and its work dir must be those of one of the components in
// the package's manifest (admq-package.json), with the node's own program
// and data dirs for {programDir} and {dataDir}; the other variables
// ({managerIp}, {myid} …) the manager fills in may hold anything. A
// manager cannot make the agent run a program the package does not name.

// manifestPath is where the manifest of the cached package sha is kept
// once read from it.
func (m *Manager) manifestPath(sha string) string {
	return filepath.Join(m.pkgDir, sha+".manifest.json")
}

// packageManifest returns the manifest of the cached package sha, read
// from the package (once; then from the copy beside it).
func (m *Manager) packageManifest(sha, format string) (manifest.Manifest, error) {
	data, err := os.ReadFile(m.manifestPath(sha))
	if errors.Is(err, os.ErrNotExist) {
		data, err = m.readManifest(sha, format)
		if err != nil {
			return manifest.Manifest{}, err
		}
		if err := atomicfile.WriteFile(m.manifestPath(sha), data, 0o600); err != nil {
			return manifest.Manifest{}, fmt.Errorf("keep the manifest of %s: %w", sha, err)
		}
	} else if err != nil {
		return manifest.Manifest{}, err
	}
	mf, err := manifest.Parse(data)
	if err != nil {
		return manifest.Manifest{}, invalid.Field("package_sha256", "package %s: %s: %v", sha, manifest.FileName, err)
	}
	return mf, nil
}

func (m *Manager) readManifest(sha, format string) ([]byte, error) {
	f, err := os.Open(m.PackagePath(sha))
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNotCached, sha)
	}
	defer f.Close()
	insp, err := archive.Inspect(f, format, archive.Limits{})
	if errors.Is(err, archive.ErrUnsafe) || errors.Is(err, archive.ErrFormat) || errors.Is(err, archive.ErrLimit) {
		return nil, invalid.Field("package_sha256", "package %s: %v", sha, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read package %s: %w", sha, err)
	}
	if insp.Manifest == nil {
		return nil, invalid.Field("package_sha256", "package %s has no %s at its root: the agent runs only what a package declares", sha, manifest.FileName)
	}
	return insp.Manifest, nil
}

// CheckDeclared returns nil when the manifest declares the command r asks
// to run, else an *invalid.Error saying, for each component, why not.
func CheckDeclared(mf manifest.Manifest, r DeployRequest) error {
	fixed := map[string]string{"programDir": r.ProgramDir, "dataDir": r.DataDir}
	var reasons []string
	for _, name := range mf.ComponentNames() {
		reason, err := declares(mf.Components[name], r, fixed)
		if err != nil {
			return invalid.Field("package_sha256", "manifest component %s: %v", name, err)
		}
		if reason == "" {
			return nil
		}
		reasons = append(reasons, name+": "+reason)
	}
	return invalid.Field("argv", "the package does not declare this command (%s)", strings.Join(reasons, "; "))
}

// declares says why component c does not declare r's command, or "".
func declares(c manifest.Component, r DeployRequest, fixed map[string]string) (string, error) {
	if len(c.Start) != len(r.Argv) {
		return fmt.Sprintf("start has %d arguments, not %d", len(c.Start), len(r.Argv)), nil
	}
	for i, t := range c.Start {
		if ok, err := matches(t, r.Argv[i], fixed); err != nil || !ok {
			return fmt.Sprintf("argument %d %q is not %q", i, clip(r.Argv[i]), t), err
		}
	}
	for _, e := range r.Env {
		k, v, _ := strings.Cut(e, "=")
		t, ok := c.Env[k]
		if !ok {
			return fmt.Sprintf("env %s is not declared", clip(k)), nil
		}
		if ok, err := matches(t, v, fixed); err != nil || !ok {
			return fmt.Sprintf("env %s=%q is not %q", k, clip(v), t), err
		}
	}
	if r.WorkDir != "" {
		// As the manager resolves it: relative to the program dir, clean.
		t := c.WorkDir
		if t == "" {
			t = "{programDir}"
		}
		t = path.Clean(t)
		if !strings.HasPrefix(t, "/") && !strings.HasPrefix(t, "{") {
			t = "{programDir}/" + t
		}
		if ok, err := matches(t, r.WorkDir, fixed); err != nil || !ok {
			return fmt.Sprintf("work dir %q is not %q", clip(r.WorkDir), t), err
		}
	}
	return "", nil
}

func matches(template, v string, fixed map[string]string) (bool, error) {
	re, err := manifest.Matcher(template, fixed)
	if err != nil {
		return false, err
	}
	return re.Match(v), nil
}

// clip shortens what a request said for an error message.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
