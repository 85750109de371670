// Command dist packs the binaries that `make dist-bin` built into the
// release files, beside them in the dist dir:
//
//	admq-manager-<version>-linux-<arch>.tar.gz  manager, agents/, README, unit
//	admq-manager_<version>_<arch>.deb, admq-manager-<version>-1.<arch>.rpm
//	admq-agent_<version>_<arch>.deb, admq-agent-<version>-1.<arch>.rpm
//
// The packages are built with nfpm as a library: nothing is fetched but Go
// modules. This dir is a module of its own, so that nfpm and its many
// dependencies stay out of admq-manager's go.mod (and so that go mod tidy
// keeps working there: nfpm's own tests import a module the proxy does not
// serve). It imports nothing from admq-manager and reads what it packs from
// the repository: the units in packaging/systemd, the settings in
// packaging/etc/default and the scripts in packaging/scripts. `make dist` and
// `make packages` run it:
//
//	cd packaging/dist && go run . -root ../.. -dist ../../dist -version v1.2.3
package main

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers "deb"
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers "rpm"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "dist:", err)
		}
		os.Exit(1)
	}
}

// release is one version's packing job.
type release struct {
	// Dist holds the binaries, <cmd>-linux-<arch>, and receives the output.
	Dist string
	// Root is the repository root: README.md and packaging/.
	Root string
	// Version is the build's version as `git describe` gives it.
	Version string
	// AgentArches are the agent binaries every manager carries.
	AgentArches []string
	// MTime stamps every file in the archives.
	MTime time.Time
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("dist", flag.ContinueOnError)
	dist := fs.String("dist", "dist", "dir with the binaries <cmd>-linux-<arch>; the release files go there too")
	root := fs.String("root", "../..", "repository root")
	version := fs.String("version", "dev", "version, as git describe prints it")
	arches := fs.String("arches", "amd64 arm64", "architectures to pack, space-separated")
	agentArches := fs.String("agent-arches", "amd64 arm64", "agent binaries every manager package and tarball carries")
	formats := fs.String("formats", "tar deb rpm", "what to make: tar, deb, rpm")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r := release{Dist: *dist, Root: *root, Version: *version, AgentArches: strings.Fields(*agentArches), MTime: mtime()}
	if _, err := os.Stat(r.unit("admq-agent.service")); err != nil {
		return fmt.Errorf("-root %s: not the repository root: %w", r.Root, err)
	}
	for _, arch := range strings.Fields(*arches) {
		for _, format := range strings.Fields(*formats) {
			var outs []string
			var err error
			switch format {
			case "tar":
				var out string
				out, err = r.tarball(arch)
				outs = append(outs, out)
			case "deb", "rpm":
				for _, pkg := range []func(arch, format string) (*nfpm.Info, error){r.managerPackage, r.agentPackage} {
					var info *nfpm.Info
					if info, err = pkg(arch, format); err != nil {
						break
					}
					var out string
					if out, err = r.writePackage(info, format); err != nil {
						break
					}
					outs = append(outs, out)
				}
			default:
				err = fmt.Errorf("unknown format %q", format)
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w", format, arch, err)
			}
			for _, out := range outs {
				fi, err := os.Stat(out)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%-50s %6.1f MiB\n", out, float64(fi.Size())/(1<<20))
			}
		}
	}
	return nil
}

// mtime honours SOURCE_DATE_EPOCH, for reproducible archives.
func mtime() time.Time {
	var sec int64
	if _, err := fmt.Sscan(os.Getenv("SOURCE_DATE_EPOCH"), &sec); err == nil {
		return time.Unix(sec, 0).UTC()
	}
	return time.Now().UTC().Truncate(time.Second)
}

func (r release) bin(cmd, arch string) string {
	return filepath.Join(r.Dist, cmd+"-linux-"+arch)
}

// tarball writes admq-manager-<version>-linux-<arch>.tar.gz: the manager,
// every agent under agents/ (for the manager to copy to servers), the
// README and the manager's systemd unit, under one top dir.
func (r release) tarball(arch string) (string, error) {
	base := "admq-manager-" + r.Version + "-linux-" + arch
	out := filepath.Join(r.Dist, base+".tar.gz")
	type entry struct {
		name string
		mode int64
		src  string
	}
	entries := []entry{{name: "admq-manager", mode: 0o755, src: r.bin("admq-manager", arch)}}
	for _, a := range r.AgentArches {
		entries = append(entries, entry{name: "agents/admq-agent-linux-" + a, mode: 0o755, src: r.bin("admq-agent", a)})
	}
	entries = append(entries,
		entry{name: "README.md", mode: 0o644, src: filepath.Join(r.Root, "README.md")},
		entry{name: "admq-manager.service", mode: 0o644, src: r.unit("admq-manager.service")})

	f, err := os.Create(out + ".tmp")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	gz, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	hdr := func(name string, mode int64, size int64, typ byte) *tar.Header {
		return &tar.Header{Name: base + "/" + name, Mode: mode, Size: size, Typeflag: typ, ModTime: r.MTime,
			Uname: "root", Gname: "root", Format: tar.FormatPAX}
	}
	for _, dir := range []string{"", "agents/"} {
		if err := tw.WriteHeader(hdr(dir, 0o755, 0, tar.TypeDir)); err != nil {
			return "", err
		}
	}
	for _, e := range entries {
		src, err := os.Open(e.src)
		if err != nil {
			return "", err
		}
		defer src.Close()
		fi, err := src.Stat()
		if err != nil {
			return "", err
		}
		if err := tw.WriteHeader(hdr(e.name, e.mode, fi.Size(), tar.TypeReg)); err != nil {
			return "", err
		}
		if _, err := io.Copy(tw, src); err != nil {
			return "", fmt.Errorf("%s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return out, os.Rename(f.Name(), out)
}

const (
	maintainer = "admq-manager developers <dev@admq.invalid>"
	homepage   = "https://github.com/admq/admq-manager"
)

// unitDir is where each format's distributions keep packaged units.
func unitDir(format string) string {
	if format == "rpm" {
		return "/usr/lib/systemd/system"
	}
	return "/lib/systemd/system"
}

func (r release) info(name, arch, description string, contents files.Contents, scripts nfpm.Scripts) *nfpm.Info {
	return nfpm.WithDefaults(&nfpm.Info{
		Name:          name,
		Arch:          arch,
		Platform:      "linux",
		Version:       packageVersion(r.Version),
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    maintainer,
		Homepage:      homepage,
		Description:   description,
		MTime:         r.MTime,
		Overridables: nfpm.Overridables{
			Contents: contents,
			Scripts:  scripts,
		},
	})
}

func file(src, dst string, mode os.FileMode) *files.Content {
	return &files.Content{Source: src, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode}}
}

func (r release) script(name string) string {
	return filepath.Join(r.Root, "packaging", "scripts", name)
}

func (r release) unit(name string) string {
	return filepath.Join(r.Root, "packaging", "systemd", name)
}

// managerPackage is admq-manager: the manager, the agents it installs on
// servers, its unit and its settings; it runs as user admq, which the
// postinstall script creates.
func (r release) managerPackage(arch, format string) (*nfpm.Info, error) {
	contents := files.Contents{
		file(r.bin("admq-manager", arch), "/usr/bin/admq-manager", 0o755),
		file(r.unit("admq-manager.service"), unitDir(format)+"/admq-manager.service", 0o644),
		{
			Source: filepath.Join(r.Root, "packaging", "etc", "default", "admq-manager"), Destination: "/etc/default/admq-manager",
			Type: files.TypeConfigNoReplace, FileInfo: &files.ContentFileInfo{Mode: 0o600},
		},
	}
	for _, a := range r.AgentArches {
		contents = append(contents, file(r.bin("admq-agent", a), "/usr/lib/admq-manager/agents/admq-agent-linux-"+a, 0o755))
	}
	return r.info("admq-manager", arch,
		"ADMQ fleet manager\nServes the ADMQ console API and the tunnel that admq-agent dials from\neach managed server; carries the agent binaries it installs on servers.",
		contents, nfpm.Scripts{
			PostInstall: r.script("admq-manager-postinstall.sh"),
			PreRemove:   r.script("admq-manager-preremove.sh"),
			PostRemove:  r.script("systemd-reload.sh"),
		}), nil
}

// agentPackage is admq-agent: the agent and its unit, which is the unit
// `admq-agent install` writes (packaging/systemd/admq-agent.service is
// rendered from the same template, and a test keeps it so), configured by
// /etc/default/admq-agent instead of flags.
func (r release) agentPackage(arch, format string) (*nfpm.Info, error) {
	return r.info("admq-agent", arch,
		"ADMQ agent\nHolds one outbound connection from a managed server to admq-manager\nand runs what the manager deploys there.",
		files.Contents{
			file(r.bin("admq-agent", arch), "/usr/bin/admq-agent", 0o755),
			file(r.unit("admq-agent.service"), unitDir(format)+"/admq-agent.service", 0o644),
			{
				Source: filepath.Join(r.Root, "packaging", "etc", "default", "admq-agent"), Destination: "/etc/default/admq-agent",
				Type: files.TypeConfigNoReplace, FileInfo: &files.ContentFileInfo{Mode: 0o644},
			},
			{Destination: "/var/lib/admq-agent", Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o700}},
		}, nfpm.Scripts{
			PostInstall: r.script("admq-agent-postinstall.sh"),
			PreRemove:   r.script("admq-agent-preremove.sh"),
			PostRemove:  r.script("systemd-reload.sh"),
		}), nil
}

func (r release) writePackage(info *nfpm.Info, format string) (string, error) {
	p, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	if err := nfpm.Validate(info); err != nil {
		return "", fmt.Errorf("%s: %w", info.Name, err)
	}
	out := filepath.Join(r.Dist, p.ConventionalFileName(info))
	f, err := os.Create(out + ".tmp")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := p.Package(info, f); err != nil {
		return "", fmt.Errorf("%s: %w", info.Name, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return out, os.Rename(f.Name(), out)
}

// packageVersion turns a `git describe` version into one that dpkg and rpm
// order correctly: v1.2.3 is 1.2.3, v1.3.0-rc.1 is 1.3.0~rc.1 (before
// 1.3.0), v1.2.3-4-gabcdef-dirty is 1.2.3+4.gabcdef.dirty (after 1.2.3),
// and a build with no tag behind it (dev, abcdef) is 0.0.0+dev.
func packageVersion(v string) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' {
				return r
			}
			return '.'
		}, s)
	}
	sv, err := semver.StrictNewVersion(strings.TrimPrefix(v, "v"))
	if err != nil {
		return "0.0.0+" + clean(v)
	}
	base := fmt.Sprintf("%d.%d.%d", sv.Major(), sv.Minor(), sv.Patch())
	pre := sv.Prerelease()
	// git describe appends -<commits>-g<hash>[-dirty] to the tag.
	parts := strings.Split(pre, "-")
	if i := slices.IndexFunc(parts, func(p string) bool { return strings.HasPrefix(p, "g") && len(p) > 1 }); i > 0 {
		tagPre, since := strings.Join(parts[:i-1], "-"), strings.Join(parts[i-1:], ".")
		if tagPre != "" {
			return base + "~" + clean(tagPre) + "+" + clean(since)
		}
		return base + "+" + clean(since)
	}
	if pre != "" {
		return base + "~" + clean(pre)
	}
	return base
}
