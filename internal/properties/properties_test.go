package properties

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	text := "# The number of milliseconds of each tick\n" +
		"tickTime=2000\n" +
		"\n" +
		"# first\n" +
		"! second\n" +
		"initLimit = 10\n" +
		"syncLimit:5\n" +
		"dataDir /var/lib/zk\n" +
		"   indented\t=\tvalue with spaces  \n" +
		"multi = one, \\\n" +
		"        two, \\\n" +
		"        three\n" +
		"esc\\=aped\\ key = a\\tb\\u00e9\\\\\n" +
		"empty=\n" +
		"bare\r\n" +
		"cr=1\r" +
		"server.1=10.0.0.1:2888:3888\n" +
		"# orphan\n" +
		"\n" +
		"tickTime=3000\n" +
		"emoji=\\uD83D\\uDE00\n" +
		"bad=\\u12G4\n" +
		"tail=x\\"
	got, dups := Parse([]byte(text))
	want := []Entry{
		{Key: "initLimit", Value: "10", Comment: "first\nsecond", Line: 6},
		{Key: "syncLimit", Value: "5", Line: 7},
		{Key: "dataDir", Value: "/var/lib/zk", Line: 8},
		{Key: "indented", Value: "value with spaces  ", Line: 9},
		{Key: "multi", Value: "one, two, three", Line: 10},
		{Key: "esc=aped key", Value: "a\tbé\\", Line: 13},
		{Key: "empty", Value: "", Line: 14},
		{Key: "bare", Value: "", Line: 15},
		{Key: "cr", Value: "1", Line: 16},
		{Key: "server.1", Value: "10.0.0.1:2888:3888", Line: 17},
		{Key: "tickTime", Value: "3000", Line: 20},
		{Key: "emoji", Value: "😀", Line: 21},
		{Key: "bad", Value: `\u12G4`, Line: 22},
		{Key: "tail", Value: "x", Line: 23},
	}
	if !reflect.DeepEqual(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w Entry
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf("entry %d: got %+v, want %+v", i, g, w)
			}
		}
	}
	if len(dups) != 1 || dups[0].Key != "tickTime" || !reflect.DeepEqual(dups[0].Lines, []int{2, 20}) {
		t.Errorf("duplicates = %+v", dups)
	}
}

func TestRenderRoundTrip(t *testing.T) {
	in := []Entry{
		{Key: "tickTime", Value: "2000", Comment: "tick\n\nlength"},
		{Key: "a key=with:seps#!", Value: " leading space, = : # ! and trailing\\"},
		{Key: "", Value: "=starts with equals"},
		{Key: "unicode", Value: "héllo 世界 😀\x00\x7f"},
		{Key: "lines", Value: "one\ntwo\r\nthree\tfour\ffive"},
		{Key: "bad utf8", Value: "a\xffb\xe2\x82"},
	}
	out := Render(in)
	got, dups := Parse(out)
	if len(dups) != 0 {
		t.Fatalf("duplicates %v", dups)
	}
	if len(got) != len(in) {
		t.Fatalf("got %d entries from\n%s", len(got), out)
	}
	for i := range in {
		if got[i].Key != in[i].Key || got[i].Value != in[i].Value || got[i].Comment != in[i].Comment {
			t.Errorf("entry %d: got %+v, want %+v\n%s", i, got[i], in[i], out)
		}
	}
	for _, c := range out {
		if c >= 0x80 && c != 0xff && c != 0xe2 && c != 0x82 {
			t.Errorf("non-ASCII byte %#x in rendered text (Properties.load reads ISO-8859-1)", c)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"a=b\n", "# c\nk : v\n", "k v\\\n  w\n", "\\u0041=\\uD83D\\uDE00", "x\\", " \\ =\\\n", "a\rb\r\nc\n",
		"!x\n#y\nkey\\:=1\nkey\\:=2\n", "=\n:\n \n\t\f", "k=\\u00", "k=\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		first, _ := Parse(data)
		second, dups := Parse(Render(first))
		if len(dups) != 0 {
			t.Fatalf("render made duplicates: %v", dups)
		}
		if len(first) != len(second) {
			t.Fatalf("%d entries, then %d after render:\n%q", len(first), len(second), Render(first))
		}
		for i := range first {
			if first[i].Key != second[i].Key || first[i].Value != second[i].Value {
				t.Fatalf("entry %d: %q=%q, then %q=%q after render", i, first[i].Key, first[i].Value, second[i].Key, second[i].Value)
			}
		}
	})
}
