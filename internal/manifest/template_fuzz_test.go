package manifest

import (
	"testing"
)

// FuzzTemplate: a template either fails the same way in Refs, Expand and
// Matcher, or expands; what it expands to is matched by its Matcher, with
// the dirs fixed to their values or left free, and not when a fixed dir
// differs.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		"{programDir}/bin/zkServer.sh", "--id={myid}", "{{literal}}", "}}{{", "{managerIp}:{serverPort}",
		"{dataDir}", "{", "}", "{nope}", "a{programDir}b{dataDir}c", "{peers}", ".*[(", "{{{myid}}}",
	} {
		f.Add(s, "/opt/n1", "x")
	}
	f.Fuzz(func(t *testing.T, s, dir, v string) {
		refs, rerr := Refs(s)
		vars := map[string]string{}
		for _, name := range Variables {
			vars[name] = v
		}
		vars["programDir"] = dir
		out, eerr := Expand(s, vars)
		free, merr := Matcher(s, nil)
		if (rerr == nil) != (eerr == nil) || (rerr == nil) != (merr == nil) {
			t.Fatalf("%q: Refs %v, Expand %v, Matcher %v: want all or none to fail", s, rerr, eerr, merr)
		}
		if rerr != nil {
			return
		}
		if !free.Match(out) {
			t.Fatalf("%q expands to %q, which its free Matcher %s does not match", s, out, free)
		}
		fixed, err := Matcher(s, map[string]string{"programDir": dir})
		if err != nil || !fixed.Match(out) {
			t.Fatalf("%q expands to %q, which its Matcher with programDir=%q does not match (%v)", s, out, dir, err)
		}
		usesDir := false
		for _, r := range refs {
			usesDir = usesDir || r == "programDir"
		}
		if usesDir && len(refs) == 1 && dir != "" {
			// The only variable is the fixed dir: another dir must not match.
			other, _ := Expand(s, map[string]string{"programDir": dir + "x"})
			if fixed.Match(other) && other != out {
				t.Fatalf("%q with programDir=%q matches %q, the expansion with another dir", s, dir, other)
			}
		}
	})
}
