package properties

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// javaProps runs testdata/PropsCheck.java, java.util.Properties itself,
// or skips the test when no JDK can run it (make test installs one).
type javaProps struct {
	in  *bufio.Writer
	out *bufio.Scanner
}

func startJava(t *testing.T) *javaProps {
	t.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("java is not installed (apt-get install openjdk-17-jdk-headless)")
	}
	cmd := exec.Command(java, "testdata/PropsCheck.java")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	j := &javaProps{in: bufio.NewWriter(stdin), out: bufio.NewScanner(stdout)}
	j.out.Buffer(make([]byte, 1<<20), 1<<24)
	// The first answer tells whether the JDK can compile the check.
	if _, err := j.store("probe", "1"); err != nil {
		cmd.Wait()
		if strings.Contains(stderr.String(), "compiler") {
			t.Skipf("the JDK cannot run a source file (a JRE only?): %s", stderr.String())
		}
		t.Fatalf("java: %v: %s", err, stderr.String())
	}
	return j
}

func (j *javaProps) ask(line string) (string, error) {
	fmt.Fprintln(j.in, line)
	if err := j.in.Flush(); err != nil {
		return "", err
	}
	if !j.out.Scan() {
		return "", fmt.Errorf("no answer to %q: %v", line, j.out.Err())
	}
	return j.out.Text(), nil
}

// store is the line Properties.store writes for key=value.
func (j *javaProps) store(key, value string) (string, error) {
	h, err := j.ask("store " + hex.EncodeToString([]byte(key)) + " " + hex.EncodeToString([]byte(value)))
	if err != nil {
		return "", err
	}
	b, err := hex.DecodeString(h)
	return string(b), err
}

// load is what Properties.load reads from text, by key.
func (j *javaProps) load(t *testing.T, text []byte) map[string]string {
	t.Helper()
	if _, err := j.ask("load " + hex.EncodeToString(text)); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for {
		line := j.out.Text()
		if line == "end" {
			return out
		}
		k, v, _ := strings.Cut(line, " ")
		kb, _ := hex.DecodeString(k)
		vb, _ := hex.DecodeString(v)
		out[string(kb)] = string(vb)
		if !j.out.Scan() {
			t.Fatal("java stopped answering")
		}
	}
}

// tricky are keys and values that need escaping.
var tricky = []string{
	"", "a", " lead", "trail ", "in side", "a=b", "a:b", "#hash", "!bang", "x#y!z", `back\slash`, "tab\there",
	"new\nline", "cr\rlf", "ff\fx", "ünïcödé", "日本語", "emoji 😀", "\x00nul", "\x7fdel", "{myid}", "{{literal}}",
	"=", ":", " ", "\\", "\\\\", "ends\\", "a\u00a0b", "\u2028",
}

func randomString(r *rand.Rand) string {
	alphabet := []rune("ab =:#!\\\t\n\r\f{}ü日😀\x00\x7f\u0080\uffff.")
	n := r.IntN(12)
	var b strings.Builder
	for range n {
		b.WriteRune(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

// TestJavaProperties compares Render and Parse with java.util.Properties
// itself (one JVM for both: starting one costs seconds).
func TestJavaProperties(t *testing.T) {
	j := startJava(t)
	t.Run("Render is Properties.store", func(t *testing.T) { renderIsJavaStore(t, j) })
	t.Run("Parse is Properties.load", func(t *testing.T) { parseIsJavaLoad(t, j) })
}

// renderIsJavaStore: Render writes each entry exactly as
// java.util.Properties.store does, and Properties.load reads back what
// Render wrote.
func renderIsJavaStore(t *testing.T, j *javaProps) {
	r := rand.New(rand.NewPCG(1, 2))
	pairs := [][2]string{}
	for _, k := range tricky {
		pairs = append(pairs, [2]string{k, "v"}, [2]string{"k", k})
	}
	for range 300 {
		pairs = append(pairs, [2]string{randomString(r), randomString(r)})
	}
	var entries []Entry
	seen := map[string]bool{}
	for _, p := range pairs {
		want, err := j.store(p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		if got := string(Render([]Entry{{Key: p[0], Value: p[1]}})); got != want {
			t.Errorf("%q=%q: Render wrote %q, Properties.store %q", p[0], p[1], got, want)
		}
		if !seen[p[0]] {
			seen[p[0]] = true
			entries = append(entries, Entry{Key: p[0], Value: p[1], Comment: "a comment\nof two lines"})
		}
	}
	got := j.load(t, Render(entries))
	if len(got) != len(entries) {
		t.Fatalf("Properties.load read %d entries of %d", len(got), len(entries))
	}
	for _, e := range entries {
		if v, ok := got[e.Key]; !ok || v != e.Value {
			t.Errorf("Properties.load read %q=%q (%v), want %q", e.Key, v, ok, e.Value)
		}
	}
}

// parseIsJavaLoad: Parse reads what Properties.load reads, on text
// written by hand.
func parseIsJavaLoad(t *testing.T, j *javaProps) {
	for _, text := range []string{
		"a=b\n# c\nk : v\n", "k v\\\n  w\n", "\\u0041=\\uD83D\\uDE00", "x\\", " \\ =\\\n", "a\rb\r\nc\n",
		"!x\n#y\nkey\\:=1\nkey\\:=2\n", "=\n:\n \n\t\f", "key\\ with\\ spaces = value  \n", "a=b=c:d\n",
		"tickTime=2000\ninitLimit=10\nserver.1=10.0.0.1:2888:3888\n",
	} {
		want := j.load(t, []byte(text))
		entries, _ := Parse([]byte(text))
		got := map[string]string{}
		for _, e := range entries {
			got[e.Key] = e.Value
		}
		keys := func(m map[string]string) []string {
			var k []string
			for x := range m {
				k = append(k, x)
			}
			slices.Sort(k)
			return k
		}
		if !slices.Equal(keys(got), keys(want)) {
			t.Errorf("%q: keys %q, Java %q", text, keys(got), keys(want))
			continue
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%q: %q=%q, Java %q", text, k, got[k], v)
			}
		}
	}
}

// FuzzRender: whatever keys and values Render writes, Parse reads back.
func FuzzRender(f *testing.F) {
	for _, k := range tricky {
		f.Add(k, "v", "")
		f.Add("k", k, k)
	}
	f.Fuzz(func(t *testing.T, key, value, comment string) {
		if !Writable(key) || !Writable(value) || !utf8.ValidString(comment) {
			return
		}
		text := Render([]Entry{{Key: key, Value: value, Comment: comment}, {Key: "after", Value: "x"}})
		got, dups := Parse(text)
		if len(dups) != 0 || len(got) != 2 || got[0].Key != key || got[0].Value != value || got[1].Key != "after" {
			t.Fatalf("%q=%q (comment %q) wrote %q, read %+v", key, value, comment, text, got)
		}
	})
}
