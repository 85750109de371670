// Package pkgname parses the file names of ADMQ software packages, which the
// console requires to be "name-Vversion-arch.ext", for example
// admq-zookeeper-V3.8.4-x86.tar.gz.
//
// The grammar, read from the right:
//
//	file    = name "-" ("V" | "v") version "-" arch "." ext
//	ext     = "tar.gz" | "tgz" | "tar"
//	arch    = "x86" | "x86_64" | "amd64"     -> x86
//	        | "arm" | "arm64" | "aarch64"    -> arm
//	        | "all" | "noarch"               -> all   (case-insensitive)
//	version = [0-9][0-9A-Za-z._+]*           (no dashes, at most 64 bytes)
//	name    = segment *("-" segment)         (at most 64 bytes)
//	segment = [A-Za-z0-9][A-Za-z0-9_.]*
//
// Because neither a version nor an arch may contain a dash, the split is
// unambiguous: the arch is the text after the last dash, the version the text
// after the dash before it (which must start with V and a digit), and the
// name everything before that. A name may therefore hold dashes and even
// "-V" parts of its own: "kafka-V2-bridge-V1.0-arm.tgz" is the package
// "kafka-V2-bridge" at version 1.0.
package pkgname

import (
	"errors"
	"fmt"
	"strings"
)

// Format is how the file name must look, for error messages.
const Format = "name-Vversion-arch.ext"

// Example is a file name in Format, for error messages.
const Example = "admq-zookeeper-V3.8.4-x86.tar.gz"

// Limits on the parts of a name.
const (
	MaxNameLen     = 64
	MaxVersionLen  = 64
	MaxFileNameLen = 255
)

// Canonical architectures.
const (
	ArchX86 = "x86"
	ArchARM = "arm"
	ArchAll = "all"
)

// exts are the accepted archive extensions, longest first so that ".tar.gz"
// wins over ".gz" style prefixes.
var exts = []string{"tar.gz", "tgz", "tar"}

// archs maps every accepted spelling (lower case) to its canonical arch.
var archs = map[string]string{
	"x86": ArchX86, "x86_64": ArchX86, "amd64": ArchX86,
	"arm": ArchARM, "arm64": ArchARM, "aarch64": ArchARM,
	"all": ArchAll, "noarch": ArchAll,
}

// ErrIllegal is wrapped by every error Parse returns.
var ErrIllegal = errors.New("package file name must be " + Format + " (e.g. " + Example + ")")

// Name is a parsed package file name.
type Name struct {
	// Name is the package name, e.g. "admq-zookeeper".
	Name string
	// Version is the version without its "V", e.g. "3.8.4".
	Version string
	// Arch is the canonical architecture: "x86", "arm" or "all".
	Arch string
	// Ext is the archive extension without its dot: "tar.gz", "tgz" or "tar".
	Ext string
}

// String returns the canonical file name of n: the name, "-V", the version,
// "-", the canonical arch, "." and the extension. Parse(n.String()) == n for
// every n that Parse returned.
func (n Name) String() string {
	return n.Name + "-V" + n.Version + "-" + n.Arch + "." + n.Ext
}

// GoArch returns the GOARCH of n's architecture: "amd64" for x86, "arm64"
// for arm and "" for all (any architecture).
func (n Name) GoArch() string {
	switch n.Arch {
	case ArchX86:
		return "amd64"
	case ArchARM:
		return "arm64"
	}
	return ""
}

// Format returns how the archive is packed: "tar.gz" (for .tar.gz and .tgz)
// or "tar".
func (n Name) Format() string {
	if n.Ext == "tar" {
		return "tar"
	}
	return "tar.gz"
}

// Parse parses a package file name. It takes a bare file name, never a path.
// Every error wraps ErrIllegal and says which part is wrong.
func Parse(filename string) (Name, error) {
	bad := func(format string, args ...any) (Name, error) {
		return Name{}, fmt.Errorf("%w: %q: %s", ErrIllegal, truncate(filename, 80), fmt.Sprintf(format, args...))
	}
	switch {
	case filename == "":
		return bad("the file name is empty")
	case len(filename) > MaxFileNameLen:
		return bad("longer than %d bytes", MaxFileNameLen)
	case strings.ContainsAny(filename, `/\`):
		return bad("must be a file name, not a path")
	}
	var ext string
	stem := ""
	for _, e := range exts {
		if s, found := strings.CutSuffix(filename, "."+e); found {
			ext, stem = e, s
			break
		}
	}
	if ext == "" {
		return bad("the extension must be .tar.gz, .tgz or .tar")
	}

	i := strings.LastIndexByte(stem, '-')
	if i < 0 {
		return bad("no -V<version>-<arch> before the extension")
	}
	rest, archText := stem[:i], stem[i+1:]
	arch, known := archs[strings.ToLower(archText)]
	if !known {
		return bad("architecture %q is not one of x86 (x86_64, amd64), arm (arm64, aarch64) or all (noarch)", truncate(archText, 20))
	}

	j := strings.LastIndexByte(rest, '-')
	if j < 0 {
		return bad("no -V<version> before the architecture")
	}
	name, verText := rest[:j], rest[j+1:]
	if len(verText) < 2 || (verText[0] != 'V' && verText[0] != 'v') || !isDigit(verText[1]) {
		return bad("%q before the architecture must be V and a version starting with a digit, e.g. V3.8.4", truncate(verText, 20))
	}
	version := verText[1:]
	if len(version) > MaxVersionLen {
		return bad("the version is longer than %d bytes", MaxVersionLen)
	}
	for k := 0; k < len(version); k++ {
		if c := version[k]; !isAlnum(c) && c != '.' && c != '_' && c != '+' {
			return bad("the version may hold only letters, digits, '.', '_' and '+'")
		}
	}

	if name == "" {
		return bad("the package name before -V is empty")
	}
	if len(name) > MaxNameLen {
		return bad("the package name is longer than %d bytes", MaxNameLen)
	}
	for _, seg := range strings.Split(name, "-") {
		if seg == "" || !isAlnum(seg[0]) {
			return bad("each dash-separated part of the package name must start with a letter or digit")
		}
		for k := 0; k < len(seg); k++ {
			if c := seg[k]; !isAlnum(c) && c != '.' && c != '_' {
				return bad("the package name may hold only letters, digits, '.', '_' and '-'")
			}
		}
	}
	return Name{Name: name, Version: version, Arch: arch, Ext: ext}, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
