// Package properties reads and writes Java-style .properties text: the
// key=value config files of ZooKeeper (zoo.cfg), BookKeeper and Pulsar
// (broker.conf), which java.util.Properties.load parses.
//
// Parse follows Properties.load: natural lines end at \n, \r or \r\n; a
// line whose first non-blank character is '#' or '!' is a comment; a line
// ending in an odd number of backslashes continues on the next one, whose
// leading blanks are dropped; the key ends at the first unescaped '=', ':'
// or blank, then blanks and one '=' or ':' are skipped; \t \n \r \f and
// \uXXXX are escapes and a backslash before any other character stands for
// that character. Unlike Properties it keeps the order of the entries and
// the comment lines directly above each one, and it never fails: a
// malformed \u escape is kept as literal text.
//
// Render writes entries back as Properties.store does, so that
// Properties.load (which reads ISO-8859-1) gets the same keys and values:
// non-ASCII characters are written as \uXXXX escapes.
package properties

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Entry is one key=value pair.
type Entry struct {
	Key   string
	Value string
	// Comment is the comment lines directly above the entry (no blank line
	// between), without their '#' or '!' and one following space, joined
	// by "\n"; empty if none.
	Comment string
	// Line is the 1-based line the entry starts on; 0 for entries made by
	// hand.
	Line int
}

// Duplicate is a key given more than once; the last value wins, as in
// java.util.Properties.
type Duplicate struct {
	Key string
	// Lines are where the key was given, in order; the last one is kept.
	Lines []int
}

func (d Duplicate) String() string {
	s := make([]string, len(d.Lines))
	for i, l := range d.Lines {
		s[i] = fmt.Sprint(l)
	}
	return fmt.Sprintf("%s (lines %s)", d.Key, strings.Join(s, ", "))
}

// Parse reads properties text. Each key appears once in entries, in the
// position and with the value of its last occurrence; keys given more than
// once are listed in duplicates, in order of their first occurrence.
func Parse(data []byte) (entries []Entry, duplicates []Duplicate) {
	var (
		all     []Entry
		comment []string
		lines   = splitLines(string(data))
	)
	for i := 0; i < len(lines); i++ {
		start := i + 1
		line := trimLeftBlank(lines[i])
		if line == "" {
			comment = comment[:0]
			continue
		}
		if line[0] == '#' || line[0] == '!' {
			c := line[1:]
			c = strings.TrimPrefix(c, " ")
			comment = append(comment, c)
			continue
		}
		// Join continuation lines.
		logical := line
		if endsContinued(line) {
			var b strings.Builder
			for endsContinued(line) {
				b.WriteString(line[:len(line)-1])
				if i+1 >= len(lines) { // continued past the end of the text
					line = ""
					break
				}
				i++
				line = trimLeftBlank(lines[i])
			}
			b.WriteString(line)
			logical = b.String()
		}
		k, v := splitKeyValue(logical)
		all = append(all, Entry{Key: unescape(k), Value: unescape(v), Comment: strings.Join(comment, "\n"), Line: start})
		comment = comment[:0]
	}

	last := make(map[string]int, len(all))
	seen := map[string][]int{}
	var order []string
	for i, e := range all {
		if _, ok := seen[e.Key]; !ok {
			order = append(order, e.Key)
		}
		seen[e.Key] = append(seen[e.Key], e.Line)
		last[e.Key] = i
	}
	for i, e := range all {
		if last[e.Key] == i {
			entries = append(entries, e)
		}
	}
	for _, k := range order {
		if l := seen[k]; len(l) > 1 {
			duplicates = append(duplicates, Duplicate{Key: k, Lines: l})
		}
	}
	return entries, duplicates
}

// splitLines splits s at \n, \r and \r\n.
func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i])
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			i++
		}
		s = s[i+1:]
	}
	return out
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\f' }

func trimLeftBlank(s string) string {
	i := 0
	for i < len(s) && isBlank(s[i]) {
		i++
	}
	return s[i:]
}

// endsContinued reports whether s ends in an odd number of backslashes.
func endsContinued(s string) bool {
	n := 0
	for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// splitKeyValue splits a logical line (no leading blanks) into its raw,
// still escaped, key and value.
func splitKeyValue(s string) (key, value string) {
	i := 0
	hasSep := false
	for i < len(s) {
		c := s[i]
		if c == '\\' {
			i += 2
			continue
		}
		if c == '=' || c == ':' {
			hasSep = true
			break
		}
		if isBlank(c) {
			break
		}
		i++
	}
	if i > len(s) {
		i = len(s)
	}
	key = s[:i]
	j := i
	if hasSep {
		j++
	}
	for j < len(s) && isBlank(s[j]) {
		j++
	}
	if !hasSep && j < len(s) && (s[j] == '=' || s[j] == ':') {
		j++
		for j < len(s) && isBlank(s[j]) {
			j++
		}
	}
	return key, s[j:]
}

// unescape resolves the escapes of a raw key or value.
func unescape(s string) string {
	if !strings.ContainsRune(s, '\\') {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch c = s[i]; c {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			r, n := unicodeEscape(s[i+1:])
			if n == 0 { // malformed: keep it as text
				b.WriteString(`\u`)
				continue
			}
			i += n
			// A surrogate pair written as two escapes is one character.
			if r >= 0xD800 && r < 0xDC00 && strings.HasPrefix(s[i+1:], `\u`) {
				if lo, m := unicodeEscape(s[i+3:]); m > 0 && lo >= 0xDC00 && lo < 0xE000 {
					r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
					i += 2 + m
				}
			}
			b.WriteRune(r)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unicodeEscape reads the 4 hex digits of a \u escape.
func unicodeEscape(s string) (rune, int) {
	if len(s) < 4 {
		return 0, 0
	}
	var r rune
	for i := 0; i < 4; i++ {
		c := s[i]
		var d rune
		switch {
		case c >= '0' && c <= '9':
			d = rune(c - '0')
		case c >= 'a' && c <= 'f':
			d = rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = rune(c-'A') + 10
		default:
			return 0, 0
		}
		r = r<<4 | d
	}
	return r, 4
}

// Render writes entries as properties text: each entry's comment lines as
// "# " lines, then "key=value". Keys and values are escaped as
// java.util.Properties.store escapes them — backslash, tab, newline,
// carriage return, form feed, '=', ':', '#' and '!', a space anywhere in a
// key and a leading one in a value, and every character outside printable
// ASCII as \uXXXX (a surrogate pair beyond the BMP) — so that Parse and
// Properties.load (which reads ISO-8859-1) get the same keys and values
// back. Bytes that are not UTF-8 are written as they are; Writable tells
// such a string apart.
func Render(entries []Entry) []byte {
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(RenderComment(e.Comment))
		escape(&b, e.Key, true)
		b.WriteByte('=')
		escape(&b, e.Value, false)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// RenderComment writes comment as comment lines ("# " and each line), or
// nothing for an empty comment.
func RenderComment(comment string) string {
	if comment == "" {
		return ""
	}
	var b strings.Builder
	for _, l := range splitLines(comment) {
		b.WriteString("#")
		if l != "" {
			b.WriteString(" ")
			b.WriteString(l)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Writable reports whether s is valid UTF-8, which Render writes so that
// it reads back unchanged.
func Writable(s string) bool { return utf8.ValidString(s) }

func escape(b *strings.Builder, s string, key bool) {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			b.WriteByte(s[i])
			i++
			continue
		}
		first := i == 0
		i += size
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == ' ' && (key || first):
			b.WriteString(`\ `)
		case r == '=' || r == ':' || r == '#' || r == '!':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r >= 0x7f:
			if r > 0xFFFF {
				r -= 0x10000
				fmt.Fprintf(b, `\u%04X\u%04X`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
			} else {
				fmt.Fprintf(b, `\u%04X`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
}
