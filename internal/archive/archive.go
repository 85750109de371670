// Package archive reads ADMQ packages (tar or gzip-compressed tar) safely.
//
// Inspect streams once through an archive a client uploaded and refuses it
// if unpacking it could reach outside its directory or exhaust the disk;
// Extract unpacks one with the same checks, into a temporary directory that
// is renamed into place only when everything succeeded.
//
// An archive is refused when an entry
//   - has an absolute path, a ".." element, a backslash, a control character
//     or a name that is not UTF-8;
//   - is not a regular file, a directory, a symbolic link or a hard link
//     (devices, FIFOs, sparse files and the like);
//   - appears twice, or sits below a file or a symbolic link;
//   - is a symbolic link whose target is absolute, or which, followed
//     through every other link in the archive, leads outside the root;
//   - is a hard link to anything but an earlier regular file;
//
// or when the archive holds more entries or more bytes than Limits allow
// (the guard against decompression bombs).
package archive

import (
	"archive/tar"
	"bufio"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/admq/admq-manager/internal/atomicfile"
	"github.com/admq/admq-manager/internal/manifest"
)

// Errors callers branch on. Any other error means the stream is not a
// readable archive of the format given.
var (
	// ErrUnsafe: an entry could reach outside the root or is of a kind
	// packages may not hold.
	ErrUnsafe = errors.New("unsafe archive")
	// ErrLimit: the archive exceeds Limits.
	ErrLimit = errors.New("archive too large")
	// ErrFormat: the stream is not a valid archive of the format given.
	ErrFormat = errors.New("not a valid archive")
)

// Formats.
const (
	FormatTar   = "tar"
	FormatTarGz = "tar.gz"
)

// Limits bound what an archive may hold. Zero fields take the defaults.
type Limits struct {
	// MaxEntries is the most entries (default 100,000).
	MaxEntries int
	// MaxSize is the most bytes all regular files hold together, unpacked
	// (default 16 GiB).
	MaxSize int64
	// MaxManifestSize is the most bytes of admq-package.json (default
	// manifest.MaxSize).
	MaxManifestSize int64
}

// Defaults of Limits.
const (
	DefaultMaxEntries = 100_000
	DefaultMaxSize    = 16 << 30
)

func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultMaxSize
	}
	if l.MaxManifestSize <= 0 {
		l.MaxManifestSize = manifest.MaxSize
	}
	return l
}

// Limits on names, as on Linux.
const (
	maxPathLen = 4096
	maxElemLen = 255
	maxHops    = 40 // symbolic links followed while resolving one link
)

// trailerLimit bounds the bytes read after the end of a tar stream inside
// gzip (tar pads to 10 KiB records; more is suspicious).
const trailerLimit = 1 << 20

// Inspection is what Inspect learnt about an archive.
type Inspection struct {
	// Manifest is the content of admq-package.json at the archive root,
	// nil if there is none.
	Manifest []byte
	// ManifestElsewhere is the path of an admq-package.json found below the
	// root, a hint for the error when Manifest is nil.
	ManifestElsewhere string
	// Files maps each regular file's clean path (no "./" prefix) to its
	// size; hard links count as regular files.
	Files map[string]int64
	// Symlinks maps each symbolic link's clean path to its target.
	Symlinks map[string]string
	// Entries is the number of entries.
	Entries int
	// Size is the bytes all regular files hold together.
	Size int64
}

// Inspect reads an archive of format ("tar.gz", "tgz" or "tar") from r to
// its end and checks every entry. Errors wrap ErrUnsafe, ErrLimit or
// ErrFormat, or are read errors from r.
func Inspect(r io.Reader, format string, lim Limits) (Inspection, error) {
	lim = lim.withDefaults()
	tr, finish, err := open(r, format)
	if err != nil {
		return Inspection{}, err
	}
	c := newChecker(lim)
	ins := Inspection{Files: c.files, Symlinks: c.links}
	for {
		h, err := next(tr)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Inspection{}, err
		}
		p, err := c.add(h)
		if err != nil {
			return Inspection{}, err
		}
		if path.Base(p) != manifest.FileName {
			continue
		}
		if p != manifest.FileName {
			if ins.ManifestElsewhere == "" {
				ins.ManifestElsewhere = p
			}
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return Inspection{}, fmt.Errorf("%w: %s must be a regular file, not a link", ErrUnsafe, manifest.FileName)
		}
		if h.Size > lim.MaxManifestSize {
			return Inspection{}, fmt.Errorf("%w: %s is %d bytes; at most %d are allowed", ErrLimit, manifest.FileName, h.Size, lim.MaxManifestSize)
		}
		if ins.Manifest, err = io.ReadAll(tr); err != nil {
			return Inspection{}, readError(err)
		}
	}
	if err := c.finish(); err != nil {
		return Inspection{}, err
	}
	if err := finish(); err != nil {
		return Inspection{}, err
	}
	ins.Entries, ins.Size = c.entries, c.size
	return ins, nil
}

// Extract unpacks an archive of format from r into destDir, which must not
// exist yet, with the checks of Inspect. It unpacks into a temporary
// directory beside destDir and renames it into place at the end, so that on
// any error nothing is left behind. It never writes through a symbolic link
// and gives files and directories no more than mode 0755 (no setuid, setgid
// or sticky bits). Data is not fsynced; callers that need durability sync
// the tree themselves. The staging dir that an extract into destDir left
// when its process was killed is removed, so extracts into one destDir must
// not run concurrently.
func Extract(ctx context.Context, r io.Reader, format, destDir string, lim Limits) (err error) {
	lim = lim.withDefaults()
	dest := filepath.Clean(destDir)
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("extract: %s: %w", dest, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("extract: %w", err)
	}
	// A process killed in the middle of an extract left its staging dir;
	// nothing would ever use or remove it.
	if err := atomicfile.RemoveStale(filepath.Dir(dest), filepath.Base(dest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("extract: remove what an interrupted extract left: %w", err)
	}
	tr, finish, err := open(r, format)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-")
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer root.Close()

	c := newChecker(lim)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := next(tr)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		p, err := c.add(h)
		if err != nil {
			return err
		}
		if err := write(root, tr, h, p); err != nil {
			return fmt.Errorf("extract %s: %w", p, err)
		}
	}
	if err := c.finish(); err != nil {
		return err
	}
	if err := finish(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	return nil
}

// write creates the entry h, already checked, at clean path p under root.
func write(root *os.Root, tr io.Reader, h *tar.Header, p string) error {
	if p == "." || h.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	// The checker guarantees that no parent is a file or a symbolic link,
	// so MkdirAll only ever walks real directories; os.Root enforces the
	// same again.
	if dir := path.Dir(p); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := root.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return root.Chmod(p, safeMode(h.Mode)|0o700)
	case tar.TypeReg:
		mode := safeMode(h.Mode) | 0o600
		f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		n, err := io.Copy(f, tr)
		if err == nil && n != h.Size {
			err = fmt.Errorf("%w: short file: %d of %d bytes", ErrFormat, n, h.Size)
		}
		if err == nil {
			err = f.Chmod(mode) // past the umask
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return readError(err)
	case tar.TypeSymlink:
		return root.Symlink(h.Linkname, p)
	case tar.TypeLink:
		target, _ := cleanName(h.Linkname)
		return root.Link(target, p)
	}
	return fmt.Errorf("%w: unexpected entry type %q", ErrUnsafe, h.Typeflag)
}

// safeMode keeps the permission bits of a tar mode up to 0755.
func safeMode(m int64) fs.FileMode { return fs.FileMode(m) & 0o755 }

// open returns a tar reader on r and a function to call after the last
// entry, which checks the rest of a gzip stream.
func open(r io.Reader, format string) (*tar.Reader, func() error, error) {
	switch format {
	case FormatTar:
		return tar.NewReader(r), func() error { return nil }, nil
	case FormatTarGz, "tgz":
		br := bufio.NewReaderSize(r, 64<<10)
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: not gzip-compressed: %v", ErrFormat, err)
		}
		finish := func() error {
			// Read to the end of the gzip stream, which verifies its
			// checksum, but not without bound.
			n, err := io.Copy(io.Discard, io.LimitReader(gz, trailerLimit+1))
			if err != nil {
				return readError(err)
			}
			if n > trailerLimit {
				return fmt.Errorf("%w: more than %d bytes follow the end of the tar archive", ErrFormat, trailerLimit)
			}
			return nil
		}
		return tar.NewReader(gz), finish, nil
	}
	return nil, nil, fmt.Errorf("%w: unknown format %q (want %s or %s)", ErrFormat, format, FormatTarGz, FormatTar)
}

// next returns the next header; a name the tar package itself calls
// insecure is returned for the checker to explain.
func next(tr *tar.Reader) (*tar.Header, error) {
	h, err := tr.Next()
	if errors.Is(err, tar.ErrInsecurePath) {
		err = nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, readError(err)
	}
	return h, err
}

// readError classifies an error met while reading the archive: a corrupt
// stream is ErrFormat; other errors (the source failing) pass unchanged.
func readError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, tar.ErrHeader), errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, tar.ErrFieldTooLong):
		return fmt.Errorf("%w: %v", ErrFormat, err)
	}
	var ce flate.CorruptInputError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return err
}

// kind of a node in the archive's tree.
type kind uint8

const (
	kindDir kind = iota
	kindFile
	kindSymlink
)

func (k kind) String() string {
	return [...]string{"a directory", "a file", "a symbolic link"}[k]
}

type node struct {
	kind     kind
	implicit bool   // a directory only implied by a deeper entry
	target   string // of a symbolic link
}

// checker follows the tree an archive builds, entry by entry.
type checker struct {
	lim     Limits
	nodes   map[string]*node
	files   map[string]int64
	links   map[string]string
	entries int
	size    int64
}

func newChecker(lim Limits) *checker {
	return &checker{
		lim:   lim,
		nodes: map[string]*node{".": {kind: kindDir}},
		files: map[string]int64{},
		links: map[string]string{},
	}
}

// add checks entry h against the entries before it and returns its clean
// path ("." for the root, "" for a global PAX header).
func (c *checker) add(h *tar.Header) (string, error) {
	c.entries++
	if c.entries > c.lim.MaxEntries {
		return "", fmt.Errorf("%w: more than %d entries", ErrLimit, c.lim.MaxEntries)
	}
	unsafe := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("%w: entry %q: %s", ErrUnsafe, truncate(h.Name, 200), fmt.Sprintf(format, args...))
	}
	var k kind
	switch h.Typeflag {
	case tar.TypeXGlobalHeader:
		return "", nil
	case tar.TypeReg:
		k = kindFile
	case tar.TypeDir:
		k = kindDir
	case tar.TypeSymlink:
		k = kindSymlink
	case tar.TypeLink:
		k = kindFile
	case tar.TypeChar, tar.TypeBlock:
		return unsafe("is a device; packages may hold only files, directories and links")
	case tar.TypeFifo:
		return unsafe("is a FIFO; packages may hold only files, directories and links")
	case tar.TypeGNUSparse:
		return unsafe("is a sparse file; pack it as a regular file")
	default:
		return unsafe("has entry type %q; packages may hold only files, directories and links", h.Typeflag)
	}
	if k != kindDir && strings.HasSuffix(h.Name, "/") {
		return unsafe("is %s but its name ends in /", k)
	}
	p, reason := cleanName(h.Name)
	if reason != "" {
		return unsafe("%s", reason)
	}
	if p == "." {
		if k != kindDir {
			return unsafe("names the archive root but is not a directory")
		}
		return p, nil
	}

	// Every parent must be a directory; note the implied ones.
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		dir := p[:i]
		switch n := c.nodes[dir]; {
		case n == nil:
			c.nodes[dir] = &node{kind: kindDir, implicit: true}
		case n.kind != kindDir:
			return unsafe("its parent %q is %s", dir, n.kind)
		}
	}
	if n := c.nodes[p]; n != nil {
		if n.kind == kindDir && n.implicit && k == kindDir {
			n.implicit = false
			return p, nil
		}
		return unsafe("duplicate path: %q is already %s", p, n.kind)
	}

	n := &node{kind: k}
	switch h.Typeflag {
	case tar.TypeReg:
		if h.Size < 0 {
			return unsafe("has a negative size")
		}
		if h.Size > c.lim.MaxSize-c.size {
			return "", fmt.Errorf("%w: unpacks to more than %d bytes", ErrLimit, c.lim.MaxSize)
		}
		c.size += h.Size
		c.files[p] = h.Size
	case tar.TypeLink:
		target, reason := cleanName(h.Linkname)
		if reason != "" {
			return unsafe("hard link target %q %s", truncate(h.Linkname, 200), reason)
		}
		if t := c.nodes[target]; t == nil || t.kind != kindFile {
			return unsafe("is a hard link to %q, which is not an earlier regular file in the archive", truncate(h.Linkname, 200))
		}
		c.files[p] = c.files[target]
	case tar.TypeSymlink:
		t := h.Linkname
		switch {
		case t == "":
			return unsafe("is a symbolic link without a target")
		case strings.HasPrefix(t, "/"):
			return unsafe("is a symbolic link to the absolute path %q", truncate(t, 200))
		case len(t) > maxPathLen:
			return unsafe("has a symbolic link target longer than %d bytes", maxPathLen)
		case strings.ContainsAny(t, "\\\x00"):
			return unsafe("has a symbolic link target with a backslash or NUL")
		}
		if escapes(path.Join(path.Dir(p), t)) {
			return unsafe("is a symbolic link to %q, outside the archive", truncate(t, 200))
		}
		n.target = t
		c.links[p] = t
	}
	c.nodes[p] = n
	return p, nil
}

// finish checks what only the whole archive shows: that no symbolic link,
// followed through the others, leads outside the root.
func (c *checker) finish() error {
	links := make([]string, 0, len(c.links))
	for p := range c.links {
		links = append(links, p)
	}
	slices.Sort(links)
	for _, p := range links {
		if reason := c.resolve(p); reason != "" {
			return fmt.Errorf("%w: entry %q: symbolic link to %q %s", ErrUnsafe, p, c.links[p], reason)
		}
	}
	return nil
}

// resolve follows the symbolic link at p as the kernel would once the
// archive is unpacked, and says why it is unsafe, or "".
func (c *checker) resolve(p string) string {
	var resolved []string
	if dir := path.Dir(p); dir != "." {
		resolved = strings.Split(dir, "/")
	}
	pending := strings.Split(c.links[p], "/")
	hops := 0
	for len(pending) > 0 {
		elem := pending[0]
		pending = pending[1:]
		switch elem {
		case "", ".":
			continue
		case "..":
			if len(resolved) == 0 {
				return "leads outside the archive"
			}
			resolved = resolved[:len(resolved)-1]
			continue
		}
		cand := strings.Join(append(resolved, elem), "/")
		if n := c.nodes[cand]; n != nil && n.kind == kindSymlink {
			if hops++; hops > maxHops {
				return "passes through too many symbolic links"
			}
			pending = append(strings.Split(n.target, "/"), pending...)
			continue
		}
		resolved = append(resolved, elem)
	}
	return ""
}

// escapes reports whether the clean path p leads above the root.
func escapes(p string) bool { return p == ".." || strings.HasPrefix(p, "../") }

// cleanName returns the clean form of an entry name ("./a//b/" -> "a/b",
// "./" -> "."), or why the name is not acceptable.
func cleanName(name string) (string, string) {
	switch {
	case name == "":
		return "", "has an empty name"
	case len(name) > maxPathLen:
		return "", fmt.Sprintf("has a name longer than %d bytes", maxPathLen)
	case !utf8.ValidString(name):
		return "", "has a name that is not UTF-8"
	case strings.HasPrefix(name, "/"):
		return "", "has an absolute path"
	case strings.ContainsRune(name, '\\'):
		return "", "has a backslash in its name"
	case strings.ContainsFunc(name, unicode.IsControl):
		return "", "has a control character in its name"
	}
	elems := strings.Split(name, "/")
	kept := elems[:0]
	for _, e := range elems {
		switch {
		case e == "..":
			return "", `has a ".." element`
		case e == "" || e == ".":
			continue
		case len(e) > maxElemLen:
			return "", fmt.Sprintf("has a name element longer than %d bytes", maxElemLen)
		}
		kept = append(kept, e)
	}
	if len(kept) == 0 {
		return ".", ""
	}
	return strings.Join(kept, "/"), ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
