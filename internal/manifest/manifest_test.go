package manifest

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestParseGood(t *testing.T) {
	m, err := Parse(readFixture(t, "good/zookeeper.json"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Manifest{
		ManifestVersion: 1, Name: "zookeeper", Version: "3.8.4", MqType: 1, Description: "Apache ZooKeeper for ADMQ",
		Components: map[string]Component{"coordinator": {
			Start: []string{"java", "-cp", "{programDir}/conf:{programDir}/lib/*",
				"org.apache.zookeeper.server.quorum.QuorumPeerMain", "{programDir}/conf/zoo.cfg"},
			Env:     map[string]string{"JAVA_OPTS": "-Xmx512m", "ZOO_LOG_DIR": "{dataDir}/logs"},
			WorkDir: "{programDir}",
			ConfigFiles: []ConfigFile{
				{Name: "zoo.cfg", Path: "conf/zoo.cfg", Format: "properties"},
				{Name: "myid", Path: "conf/myid", Format: "raw", Target: "{dataDir}/myid"},
			},
			ServerPort: 2181, PortKey: "clientPort",
			Health: Health{TCP: "{managerIp}:{serverPort}", TimeoutSeconds: 5, IntervalSeconds: 10, StartSeconds: 60},
			Quorum: true, RoleProbe: RoleProbe{TCP: "{dataIp}:{serverPort}", Send: "srvr", Leader: "^Mode: leader$", TimeoutSeconds: 3},
		}},
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("Parse =\n%+v\nwant\n%+v", m, want)
	}

	m, err = Parse(readFixture(t, "good/multi.json"))
	if err != nil {
		t.Fatalf("Parse multi: %v", err)
	}
	if got := strings.Join(m.ComponentNames(), ","); got != "broker,storage" {
		t.Fatalf("ComponentNames = %s", got)
	}

	m, err = Parse(readFixture(t, "good/nats.json"))
	if err != nil {
		t.Fatalf("Parse nats: %v", err)
	}
	if b := m.Components["broker"]; b.Peer != "nats-route://{dataIp}:6222" || b.ConfigFiles[3].Target != "{dataDir}/jetstream/seed" {
		t.Fatalf("broker %+v", b)
	}
}

// TestParseBad follows prometheus' TestBadConfigs: each fixture with the
// text its error must contain.
func TestParseBad(t *testing.T) {
	cases := []struct {
		file, err string
	}{
		{"empty.json", "the manifest is empty"},
		{"truncated.json", "the document ends early"},
		{"array.json", "want a JSON object, got array"},
		{"no-components.json", "components: at least one component is required"},
		{"unknown-field.json", `components.coordinator.strat: unknown field; known: configFiles, env, health, peer, portKey, quorum, roleProbe, serverPort, start, workDir`},
		{"wrong-case.json", `Components: unknown field (did you mean "components"? names are case-sensitive)`},
		{"duplicate-key.json", "components.coordinator: duplicate key"},
		{"trailing.json", "exactly one JSON object"},
		{"port-type.json", "components.c.serverPort: want a JSON number, got string"},
		{"config-absolute.json", "components.coordinator.configFiles[0].path: must be relative to the package root"},
		{"config-dotdot.json", `components.coordinator.configFiles[0].path: must not contain ".."`},
		{"config-unclean.json", `components.coordinator.configFiles[0].path: must be a clean path to a file ("conf/zoo.cfg", not "./conf//zoo.cfg")`},
		{"config-duplicate.json", `components.coordinator.configFiles[1].name: "zoo.cfg" is also the name of configFiles[0]`},
		{"config-format.json", `components.coordinator.configFiles[0].format: must be "properties" or "raw", not "yaml"`},
		{"component-name.json", "components.Coordinator: component name must be"},
		{"empty-start.json", "components.coordinator.start: start must be a non-empty argv"},
		{"port-range.json", "components.coordinator.serverPort: must be a port from 1 to 65535"},
		{"two-health-checks.json", "components.coordinator.health: exactly one of tcp, http and command is required, not 2"},
		{"no-health-check.json", "components.coordinator.health: exactly one of tcp, http and command is required, not 0"},
		{"unknown-variable.json", "components.coordinator.start[0]: unknown variable {progamDir}; known: {cluster}"},
		{"unclosed-brace.json", `components.coordinator.health.tcp: unclosed "{" at byte 0`},
		{"bad-tcp.json", "components.coordinator.health.tcp: must be host:port"},
		{"bad-http.json", "components.coordinator.health.http: must be an http:// or https:// URL"},
		{"portkey-without-properties.json", `components.coordinator.portKey: needs a config file in "properties" format`},
		{"manifest-version.json", "manifestVersion: version 2 is not supported; this manager reads version 1"},
		{"name-version.json", "name: must be 1-64 letters"},
		{"env-key.json", "components.coordinator.env.JAVA-OPTS: environment variable names must match"},
		{"nul.json", "components.coordinator.start[0]: must not contain a NUL byte"},
		{"workdir-dotdot.json", `components.coordinator.workDir: must not contain ".."`},
		{"health-timeouts.json", "components.coordinator.health.timeoutSeconds: must be from 0 (the default) to 300; components.coordinator.health.intervalSeconds: must be from 0 (the default) to 3600"},
		{"target-absolute.json", `components.coordinator.configFiles[1].target: must be relative to {programDir}, or start with "{programDir}/" or "{dataDir}/"`},
		{"target-dotdot.json", `components.coordinator.configFiles[0].target: must not contain ".."`},
		{"target-variable.json", `components.coordinator.configFiles[0].target: may use no {variable} but a leading "{programDir}/" or "{dataDir}/"`},
		{"target-duplicate.json", `components.coordinator.configFiles[2].target: "{dataDir}/myid" is where configFiles[1] is written too`},
		{"target-shadows-path.json", `components.coordinator.configFiles[1].path: "conf/zoo.cfg" is where configFiles[0] is written too`},
		{"peer-peers.json", "components.coordinator.peer: must not use {peers}"},
		{"peer-template.json", `components.coordinator.peer: unclosed "{" at byte 0`},
		{"roleprobe-both.json", "components.coordinator.roleProbe: exactly one of tcp and command is required"},
		{"roleprobe-pattern.json", "components.coordinator.roleProbe.leader: error parsing regexp"},
		{"many-problems.json", "name: must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit; version: must start with a digit"},
	}
	files, _ := filepath.Glob("testdata/bad/*.json")
	if len(files) != len(cases) {
		t.Errorf("%d fixtures in testdata/bad but %d cases", len(files), len(cases))
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			m, err := Parse(readFixture(t, "bad/"+c.file))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", m)
			}
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("error %T is not an *Error", err)
			}
			if !strings.Contains(err.Error(), c.err) {
				t.Fatalf("error\n  %s\ndoes not contain\n  %s", err, c.err)
			}
		})
	}
}

func TestProblemsInDocumentOrder(t *testing.T) {
	_, err := Parse(readFixture(t, "bad/many-problems.json"))
	var me *Error
	if !errors.As(err, &me) {
		t.Fatalf("error %v", err)
	}
	var paths []string
	for _, p := range me.Problems {
		paths = append(paths, p.Path)
	}
	want := "name,version,mqType,components.a.start,components.a.serverPort,components.a.health," +
		"components.b.start[0],components.b.serverPort,components.b.health"
	if got := strings.Join(paths, ","); got != want {
		t.Fatalf("problem paths\n  %s\nwant\n  %s", got, want)
	}
}

func TestParseTooLarge(t *testing.T) {
	big := append(readFixture(t, "good/zookeeper.json"), make([]byte, MaxSize)...)
	_, err := Parse(big)
	if err == nil || !strings.Contains(err.Error(), "at most 65536 are allowed") {
		t.Fatalf("Parse of %d bytes: %v", len(big), err)
	}
}

func TestConfigFileDestination(t *testing.T) {
	cases := []struct {
		path, target string
		dir, rel     string
		err          string
	}{
		{path: "conf/zoo.cfg", dir: DirProgram, rel: "conf/zoo.cfg"},
		{path: "conf/myid", target: "{dataDir}/myid", dir: DirData, rel: "myid"},
		{path: "conf/myid", target: "{dataDir}/zk/version-2/myid", dir: DirData, rel: "zk/version-2/myid"},
		{path: "conf/a.tpl", target: "conf/a", dir: DirProgram, rel: "conf/a"},
		{path: "conf/a.tpl", target: "{programDir}/conf/a", dir: DirProgram, rel: "conf/a"},
		{path: "a", target: "/etc/x", err: `must be relative to {programDir}, or start with "{programDir}/" or "{dataDir}/"`},
		{path: "a", target: "{dataDir}/../x", err: `must not contain ".."`},
		{path: "a", target: "../x", err: `must not contain ".."`},
		{path: "a", target: "{cluster}/x", err: `may use no {variable} but a leading "{programDir}/" or "{dataDir}/"`},
		{path: "a", target: "{dataDir}/{node}/x", err: "may use no {variable}"},
		{path: "a", target: "{dataDir}x", err: "may use no {variable}"},
		{path: "a", target: "{{dataDir}}/x", err: "may use no {variable}"},
		{path: "a", target: "{dataDir}", err: "must name a file in the directory"},
		{path: "a", target: "{dataDir}/", err: "must name a file in the directory"},
		{path: "a", target: "{programDir}/.", err: "must name a file in the directory"},
		{path: "a", target: "{dataDir}//x", err: `must be a clean path to a file ("{dataDir}/x", not "{dataDir}//x")`},
		{path: "a", target: "{dataDir}/./x/", err: `must be a clean path to a file ("{dataDir}/x", not "{dataDir}/./x/")`},
		{path: "a", target: `conf\x`, err: `must use "/"`},
		{path: "a", target: "x\x00y", err: "must not contain a NUL byte"},
		{path: "/etc/a", err: `path "/etc/a" must be relative to the package root`},
	}
	for _, c := range cases {
		t.Run(c.path+" "+c.target, func(t *testing.T) {
			dir, rel, err := ConfigFile{Name: "f", Path: c.path, Target: c.target}.Destination()
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Destination = %q %q, %v; want error %q", dir, rel, err, c.err)
				}
				return
			}
			if err != nil || dir != c.dir || rel != c.rel {
				t.Fatalf("Destination = %q %q, %v; want %q %q", dir, rel, err, c.dir, c.rel)
			}
		})
	}
}

func TestTemplates(t *testing.T) {
	vars := map[string]string{"programDir": "/opt/zk", "serverPort": "2181"}
	cases := []struct {
		in, want, err string
	}{
		{"{programDir}/bin/zk", "/opt/zk/bin/zk", ""},
		{"plain", "plain", ""},
		{"{{literal}} {serverPort}", "{literal} 2181", ""},
		{"}}{{", "}{", ""},
		{"{dataDir}", "", "no value for {dataDir}"},
		{"{nope}", "", "unknown variable {nope}"},
		{"{}", "", "unknown variable {}"},
		{"a}b", "", `stray "}" at byte 1`},
		{"a{b", "", `unclosed "{" at byte 1`},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := Expand(c.in, vars)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Expand = %q, %v; want error %q", got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("Expand = %q, %v; want %q", got, err, c.want)
			}
		})
	}
	refs, err := Refs("{managerIp}:{serverPort} {{x}}")
	if err != nil || strings.Join(refs, ",") != "managerIp,serverPort" {
		t.Fatalf("Refs = %v, %v", refs, err)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.json")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			var me *Error
			if !errors.As(err, &me) || len(me.Problems) == 0 {
				t.Fatalf("error is not an *Error with problems: %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("a parsed manifest does not validate: %v", err)
		}
		for _, name := range m.ComponentNames() {
			for _, cf := range m.Components[name].ConfigFiles {
				if strings.HasPrefix(cf.Path, "/") || strings.Contains("/"+cf.Path+"/", "/../") {
					t.Fatalf("unsafe config path accepted: %q", cf.Path)
				}
				dir, rel, err := cf.Destination()
				if err != nil {
					t.Fatalf("the target of a valid config file: %v", err)
				}
				if (dir != DirProgram && dir != DirData) || path.Clean(rel) != rel || strings.HasPrefix(rel, "/") ||
					rel == "." || strings.Contains("/"+rel+"/", "/../") || strings.ContainsAny(rel, "{}") {
					t.Fatalf("unsafe config target accepted: %q → %q %q", cf.Target, dir, rel)
				}
			}
		}
	})
}

func TestMatcher(t *testing.T) {
	fixed := map[string]string{"programDir": "/opt/a.b", "dataDir": "/data/x"}
	for _, c := range []struct {
		tmpl, v string
		want    bool
	}{
		{"{programDir}/bin/server", "/opt/a.b/bin/server", true},
		{"{programDir}/bin/server", "/opt/aXb/bin/server", false}, // the dot is literal
		{"{programDir}/bin/server", "/opt/a.b/bin/server2", false},
		{"--id={myid}", "--id=3", true},
		{"--id={myid}", "--id=", true},
		{"--id={myid}", "-id=3", false},
		{"{managerIp}:{serverPort}", "10.0.0.1:2181", true},
		{"{{literal}} {dataDir}", "{literal} /data/x", true},
		{"{{literal}} {dataDir}", "{{literal}} /data/x", false},
		{"a\nb{myid}", "a\nb\nc", true},
		{".*", "anything", false},
	} {
		re, err := Matcher(c.tmpl, fixed)
		if err != nil {
			t.Fatalf("Matcher(%q): %v", c.tmpl, err)
		}
		if got := re.Match(c.v); got != c.want {
			t.Errorf("Matcher(%q).Match(%q) = %v, want %v", c.tmpl, c.v, got, c.want)
		}
	}
	for _, bad := range []string{"{nope}", "{myid", "}"} {
		if _, err := Matcher(bad, fixed); err == nil {
			t.Errorf("Matcher(%q) accepted", bad)
		}
	}
}
