package ids

import (
	"encoding/json"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want ID
		ok   bool
	}{
		{"1995325829847502849", 1995325829847502849, true},
		{"1", 1, true},
		{"0", 0, false},
		{"", 0, false},
		{"-5", 0, false},
		{"+5", 0, false},
		{"12a", 0, false},
		{"9223372036854775808", 0, false},
		{" 7", 0, false},
	} {
		got, err := Parse(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("Parse(%q) = %v, %v", c.in, got, err)
		}
	}
}

func TestJSON(t *testing.T) {
	var v struct{ A, B, C ID }
	if err := json.Unmarshal([]byte(`{"A":"1995325829847502849","B":42,"C":null}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 1995325829847502849 || v.B != 42 || v.C != 0 {
		t.Fatalf("%+v", v)
	}
	out, _ := json.Marshal(v)
	if string(out) != `{"A":"1995325829847502849","B":"42","C":null}` {
		t.Fatalf("%s", out)
	}
	for _, bad := range []string{`{"A":"x"}`, `{"A":-1}`, `{"A":1.5}`, `{"A":true}`, `{"A":"0"}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestGeneratorIsUniqueAndOrdered(t *testing.T) {
	g, err := NewGenerator(3)
	if err != nil {
		t.Fatal(err)
	}
	prev := ID(0)
	for range 10000 {
		id := g.Next()
		if id <= prev {
			t.Fatalf("%v after %v", id, prev)
		}
		prev = id
	}
	if _, err := NewGenerator(1024); err == nil {
		t.Fatal("node 1024 accepted")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "1995325829847502849", "99999999999999999999", "", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			return
		}
		if id <= 0 || id.String() != s {
			t.Fatalf("Parse(%q) = %v: not canonical", s, id)
		}
		var back ID
		b, _ := json.Marshal(id)
		if err := json.Unmarshal(b, &back); err != nil || back != id {
			t.Fatalf("JSON round trip of %v: %v %v", id, back, err)
		}
	})
}
