// Package manifest defines admq-package.json, the manifest at the root of
// every ADMQ software package. It names the components the package provides
// (coordinator = ZooKeeper, storage = BookKeeper, broker, or any other name)
// and, for each, how to start it, which config files it reads, which port
// it serves and how to tell that it is healthy. The manager reads it when a
// package is uploaded and deployment follows it.
//
// An example:
//
//	{
//	  "manifestVersion": 1,
//	  "name": "zookeeper",
//	  "version": "3.8.4",
//	  "mqType": 1,
//	  "description": "Apache ZooKeeper for ADMQ",
//	  "components": {
//	    "coordinator": {
//	      "start": ["java", "-cp", "{programDir}/conf:{programDir}/lib/*",
//	                "org.apache.zookeeper.server.quorum.QuorumPeerMain", "{programDir}/conf/zoo.cfg"],
//	      "env": {"JAVA_OPTS": "-Xmx512m"},
//	      "workDir": "{programDir}",
//	      "configFiles": [{"name": "zoo.cfg", "path": "conf/zoo.cfg", "format": "properties"}],
//	      "serverPort": 2181,
//	      "portKey": "clientPort",
//	      "health": {"tcp": "{managerIp}:{serverPort}", "timeoutSeconds": 5,
//	                 "intervalSeconds": 10, "startSeconds": 60}
//	    }
//	  }
//	}
//
// Decoding is strict: unknown fields (matched case-sensitively), duplicate
// keys, trailing data and documents over MaxSize are refused, so a typo
// never silently drops a setting. Every error names the JSON path of what is
// wrong, e.g. "components.coordinator.configFiles[0].path: must be relative".
//
// Strings that are run or resolved on a node (start, env values, workDir,
// peer and the health check) are templates: "{programDir}" and the other
// Variables are filled in per node at deployment; "{{" and "}}" stand for
// literal braces. The package's config files are templates too, rendered
// per node by the manager.
//
// A config file is written on the node at its package path under
// {programDir}, unless it has a "target": a clean relative path (taken
// relative to {programDir}), or "{programDir}/" or "{dataDir}/" followed by
// one, with no other variable and no "..". ZooKeeper, for one, reads its id
// from the data dir:
//
//	{"name": "myid", "path": "conf/myid", "format": "raw", "target": "{dataDir}/myid"}
//
// with conf/myid holding "{myid}". Two config files of a component may not
// be written to the same place.
//
// {peers} lists the nodes of the node's component in its cluster, the node
// itself included, ordered by ordinal and joined by ", ": each is the
// component's "peer" template filled in with that node's variables, or,
// without a peer template, its dataIp:serverPort (an IPv6 address in
// brackets). A NATS package, for one, says "peer":
// "nats-route://{dataIp}:6222" and its nats.conf "routes: [{peers}]". A peer
// template may use every variable but {peers}.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// FileName is the manifest's path at the root of a package.
const FileName = "admq-package.json"

// MaxSize is the largest manifest accepted, in bytes.
const MaxSize = 64 << 10

// CurrentVersion is the manifest schema version this code reads. A manifest
// without "manifestVersion" is version 1.
const CurrentVersion = 1

// Config file formats.
const (
	// FormatProperties files are key=value lines; the manager imports them
	// as the node's config items. It is the default.
	FormatProperties = "properties"
	// FormatRaw files are shipped and rendered as a whole, never itemised.
	FormatRaw = "raw"
)

// Manifest is the content of admq-package.json.
type Manifest struct {
	// ManifestVersion is the schema version; 0 (absent) means 1.
	ManifestVersion int `json:"manifestVersion,omitempty"`
	// Name is the product the package holds, e.g. "zookeeper".
	Name string `json:"name"`
	// Version is the product version; it must match the version in the
	// package's file name.
	Version string `json:"version"`
	// MqType is the console's package type (the seed's mqType).
	MqType int `json:"mqType"`
	// Description is free text for people.
	Description string `json:"description,omitempty"`
	// Components maps each component name to how it runs. At least one.
	Components map[string]Component `json:"components"`
}

// Component is one kind of process a package provides.
type Component struct {
	// Start is the argv that starts the component in the foreground; the
	// agent's supervisor runs it directly, without a shell.
	Start []string `json:"start"`
	// Env is added to the process environment.
	Env map[string]string `json:"env,omitempty"`
	// WorkDir is the working directory (default "{programDir}"); a relative
	// one is taken relative to {programDir}.
	WorkDir string `json:"workDir,omitempty"`
	// ConfigFiles are the component's config files, by their path in the
	// package.
	ConfigFiles []ConfigFile `json:"configFiles,omitempty"`
	// ServerPort is the port the component serves, as the console reports it.
	ServerPort int `json:"serverPort"`
	// PortKey, if set, is the key in the component's properties config
	// files that holds ServerPort.
	PortKey string `json:"portKey,omitempty"`
	// Peer is how the component's nodes address each other: a template
	// filled in with each node's variables to make the {peers} list, e.g.
	// "nats-route://{dataIp}:6222". It may not use {peers}. Default: the
	// node's dataIp:serverPort.
	Peer string `json:"peer,omitempty"`
	// Health tells whether a started component works.
	Health Health `json:"health"`
	// Quorum says that the component's nodes keep a quorum, as a
	// ZooKeeper ensemble does: a rollout over an ensemble of 2f+1 never
	// has more than f of them down. Coordinators always do.
	Quorum bool `json:"quorum,omitempty"`
	// RoleProbe finds the node whose restart costs the most (a ZooKeeper
	// leader): a rollout restarts it last. Optional.
	RoleProbe RoleProbe `json:"roleProbe,omitzero"`
}

// RoleProbe asks a node for its role: over TCP (send TCPSend, read the
// answer) or with a command (its output); the node leads when the answer
// matches Leader, a regular expression. ZooKeeper's:
//
//	{"tcp": "{dataIp}:{serverPort}", "send": "srvr", "leader": "Mode: leader"}
type RoleProbe struct {
	TCP     string   `json:"tcp,omitempty"`
	Send    string   `json:"send,omitempty"`
	Command []string `json:"command,omitempty"`
	Leader  string   `json:"leader,omitempty"`
	// TimeoutSeconds bounds one probe (0: 5s; at most 60).
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
}

// IsZero reports whether no probe is set.
func (r RoleProbe) IsZero() bool {
	return r.TCP == "" && r.Send == "" && r.Command == nil && r.Leader == "" && r.TimeoutSeconds == 0
}

// ConfigFile is a config file of a component.
type ConfigFile struct {
	// Name is how the console shows the file (the Apollo namespace); unique
	// within the component.
	Name string `json:"name"`
	// Path is where the file is in the package: relative, clean, no "..".
	Path string `json:"path"`
	// Format is FormatProperties (default) or FormatRaw.
	Format string `json:"format,omitempty"`
	// Target is where the rendered file is written on the node (default
	// Path): a clean relative path, taken relative to {programDir}, or
	// "{programDir}/" or "{dataDir}/" followed by one; no other variable,
	// no "..". See Destination.
	Target string `json:"target,omitempty"`
}

// The directories a config file's Destination is under, named as their
// variables.
const (
	DirProgram = "programDir"
	DirData    = "dataDir"
)

// Destination returns where f is written on a node: the directory it is
// under (DirProgram or DirData) and its clean relative path there. It
// fails, as Validate does, on a bad Target; without one, f is written at
// Path under the program dir.
func (f ConfigFile) Destination() (dir, rel string, err error) {
	if f.Target == "" {
		if reason := badPath(f.Path); reason != "" {
			return "", "", fmt.Errorf("config file %s: path %q %s", f.Name, f.Path, reason)
		}
		return DirProgram, f.Path, nil
	}
	dir, rel, reason := splitTarget(f.Target)
	if reason != "" {
		return "", "", fmt.Errorf("config file %s: target %q %s", f.Name, f.Target, reason)
	}
	return dir, rel, nil
}

// splitTarget splits a config file's target into its directory and the
// path below it, or says what is wrong with it.
func splitTarget(t string) (dir, rel, reason string) {
	dir, rel, prefix := DirProgram, t, ""
	for _, d := range []string{DirProgram, DirData} {
		if r, ok := strings.CutPrefix(t, "{"+d+"}/"); ok {
			dir, rel, prefix = d, r, "{"+d+"}/"
			break
		}
	}
	switch {
	case strings.IndexByte(t, 0) >= 0:
		return "", "", "must not contain a NUL byte"
	case t == "{"+DirProgram+"}" || t == "{"+DirData+"}" || rel == "" || rel == ".":
		return "", "", `must name a file in the directory, e.g. "{dataDir}/myid"`
	case strings.ContainsAny(rel, "{}"):
		return "", "", `may use no {variable} but a leading "{programDir}/" or "{dataDir}/"`
	case strings.HasPrefix(rel, "/") && prefix == "":
		return "", "", `must be relative to {programDir}, or start with "{programDir}/" or "{dataDir}/"`
	case strings.Contains(rel, `\`):
		return "", "", `must use "/", not "\"`
	case slices.Contains(strings.Split(rel, "/"), ".."):
		return "", "", `must not contain ".."`
	case path.Clean(rel) != rel || strings.HasPrefix(rel, "/"):
		return "", "", fmt.Sprintf("must be a clean path to a file (%q, not %q)", prefix+strings.TrimPrefix(path.Clean(rel), "/"), t)
	}
	return dir, rel, ""
}

// Health is a component's health check: exactly one of TCP, HTTP and Command.
type Health struct {
	// TCP is "host:port" that must accept a connection.
	TCP string `json:"tcp,omitempty"`
	// HTTP is an http:// or https:// URL that must answer 2xx.
	HTTP string `json:"http,omitempty"`
	// Command is an argv that must exit 0.
	Command []string `json:"command,omitempty"`
	// TimeoutSeconds bounds one check (0: 5s; at most 300).
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// IntervalSeconds is the time between checks (0: 10s; at most 3600).
	IntervalSeconds int `json:"intervalSeconds,omitempty"`
	// StartSeconds is how long a just-started component may take to become
	// healthy before it counts as failed (0: 60s; at most 3600).
	StartSeconds int `json:"startSeconds,omitempty"`
}

// Variables are the names a template may use, filled in per node at
// deployment.
var Variables = []string{
	"cluster",    // the ADMQ cluster's name
	"node",       // the node's name
	"component",  // the component's name
	"nodeDir",    // the node's directory name
	"programDir", // where the package is unpacked for the node
	"dataDir",    // the node's data directory
	"managerIp",  // the server's management address
	"dataIp",     // the server's data address
	"serverPort", // the component's ServerPort
	"myid",       // the node's ordinal in its ensemble, from 1
	"zkServers",  // the coordinators as host:port,host:port
	"zkEnsemble", // the coordinators as server.N=host:2888:3888 lines
	"peers",      // the component's nodes as Peer templates, joined by ", "
}

// sample gives each variable a plausible value, to check that templates
// expand to a valid address or URL.
var sample = map[string]string{
	"cluster": "c1", "node": "n1", "component": "c", "nodeDir": "n1",
	"programDir": "/opt/admq/n1", "dataDir": "/data/admq/n1",
	"managerIp": "192.0.2.1", "dataIp": "192.0.2.2", "serverPort": "2181", "myid": "1",
	"zkServers": "192.0.2.1:2181", "zkEnsemble": "server.1=192.0.2.1:2888:3888",
	"peers": "192.0.2.2:2181",
}

// Problem is one thing wrong with a manifest.
type Problem struct {
	// Path is the JSON path, e.g. "components.broker.start"; empty for the
	// document as a whole.
	Path   string
	Reason string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Reason
	}
	return p.Path + ": " + p.Reason
}

// Error lists what is wrong with a manifest, in document order.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	s := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		s[i] = p.String()
	}
	return strings.Join(s, "; ")
}

// maxProblems caps how many problems one Error reports.
const maxProblems = 20

// Parse decodes and validates a manifest. Every error is an *Error.
func Parse(data []byte) (Manifest, error) {
	fail := func(p, format string, args ...any) (Manifest, error) {
		return Manifest{}, &Error{Problems: []Problem{{Path: p, Reason: fmt.Sprintf(format, args...)}}}
	}
	if len(data) > MaxSize {
		return fail("", "the manifest is %d bytes; at most %d are allowed", len(data), MaxSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fail("", "the manifest is empty")
	}
	if err := checkKeys(data); err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return fail(te.Field, "want a JSON %s, got %s", kindOf(te.Type.Kind().String()), te.Value)
		case errors.As(err, &se):
			return fail("", "malformed JSON at byte %d: %v", se.Offset, err)
		}
		return fail("", "%v", err)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// ComponentNames returns the component names, sorted.
func (m Manifest) ComponentNames() []string {
	names := make([]string, 0, len(m.Components))
	for n := range m.Components {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

var (
	nameRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	versionRE   = regexp.MustCompile(`^[0-9][0-9A-Za-z._+]{0,63}$`)
	componentRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	fileNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	envKeyRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	keyRE       = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
)

// Validate reports everything wrong with m as an *Error, or nil.
func (m Manifest) Validate() error {
	v := &validator{}
	if m.ManifestVersion != 0 && m.ManifestVersion != CurrentVersion {
		v.add("manifestVersion", "version %d is not supported; this manager reads version %d", m.ManifestVersion, CurrentVersion)
	}
	if !nameRE.MatchString(m.Name) {
		v.add("name", "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
	}
	if !versionRE.MatchString(m.Version) {
		v.add("version", "must start with a digit and hold only letters, digits, '.', '_' and '+' (at most 64)")
	}
	if m.MqType < 0 {
		v.add("mqType", "must not be negative")
	}
	if len(m.Components) == 0 {
		v.add("components", "at least one component is required")
	}
	for _, name := range m.ComponentNames() {
		p := "components." + name
		if !componentRE.MatchString(name) {
			v.add(p, "component name must be 1-32 of a-z, 0-9, '_' and '-', starting with a letter")
		}
		v.component(p, m.Components[name])
	}
	if len(v.problems) == 0 {
		return nil
	}
	return &Error{Problems: v.problems}
}

type validator struct {
	problems []Problem
}

func (v *validator) add(p, format string, args ...any) {
	if len(v.problems) == maxProblems {
		v.problems = append(v.problems, Problem{Reason: "and more problems not listed"})
	}
	if len(v.problems) > maxProblems {
		return
	}
	v.problems = append(v.problems, Problem{Path: p, Reason: fmt.Sprintf(format, args...)})
}

// template checks the syntax and variables of a template string.
func (v *validator) template(p, s string) bool {
	if strings.IndexByte(s, 0) >= 0 {
		v.add(p, "must not contain a NUL byte")
		return false
	}
	if _, err := Refs(s); err != nil {
		v.add(p, "%v", err)
		return false
	}
	return true
}

func (v *validator) argv(p string, argv []string, what string) {
	if len(argv) == 0 {
		v.add(p, "%s must be a non-empty argv (program and arguments)", what)
		return
	}
	if argv[0] == "" {
		v.add(p+"[0]", "the program must not be empty")
	}
	for i, a := range argv {
		v.template(fmt.Sprintf("%s[%d]", p, i), a)
	}
}

func (v *validator) component(p string, c Component) {
	v.argv(p+".start", c.Start, "start")
	envKeys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		envKeys = append(envKeys, k)
	}
	slices.Sort(envKeys)
	for _, k := range envKeys {
		if !envKeyRE.MatchString(k) {
			v.add(p+".env."+k, "environment variable names must match [A-Za-z_][A-Za-z0-9_]*")
			continue
		}
		v.template(p+".env."+k, c.Env[k])
	}
	if c.WorkDir != "" && v.template(p+".workDir", c.WorkDir) {
		if slices.Contains(strings.Split(c.WorkDir, "/"), "..") {
			v.add(p+".workDir", `must not contain ".."`)
		}
	}

	names := map[string]int{}
	paths := map[string]int{}
	targets := map[string]int{} // "dir/rel" → index
	hasProperties := false
	for i, f := range c.ConfigFiles {
		fp := fmt.Sprintf("%s.configFiles[%d]", p, i)
		if !fileNameRE.MatchString(f.Name) {
			v.add(fp+".name", "must be 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit")
		} else if j, dup := names[f.Name]; dup {
			v.add(fp+".name", "%q is also the name of configFiles[%d]", f.Name, j)
		} else {
			names[f.Name] = i
		}
		if reason := badPath(f.Path); reason != "" {
			v.add(fp+".path", "%s", reason)
		} else if j, dup := paths[f.Path]; dup {
			v.add(fp+".path", "%q is also the path of configFiles[%d]", f.Path, j)
		} else {
			paths[f.Path] = i
			if f.Target == "" {
				v.target(fp+".path", f.Path, DirProgram+"/"+f.Path, i, targets)
			}
		}
		if f.Target != "" {
			if dir, rel, reason := splitTarget(f.Target); reason != "" {
				v.add(fp+".target", "%s", reason)
			} else {
				v.target(fp+".target", f.Target, dir+"/"+rel, i, targets)
			}
		}
		switch f.Format {
		case "", FormatProperties:
			hasProperties = true
		case FormatRaw:
		default:
			v.add(fp+".format", "must be %q or %q, not %q", FormatProperties, FormatRaw, f.Format)
		}
	}

	if c.ServerPort < 1 || c.ServerPort > 65535 {
		v.add(p+".serverPort", "must be a port from 1 to 65535")
	}
	if c.Peer != "" && v.template(p+".peer", c.Peer) {
		if refs, _ := Refs(c.Peer); slices.Contains(refs, "peers") {
			v.add(p+".peer", "must not use {peers}: it describes one node, {peers} lists them all")
		}
	}
	if c.PortKey != "" {
		if !keyRE.MatchString(c.PortKey) {
			v.add(p+".portKey", "must be 1-128 letters, digits, '_', '.' or '-'")
		} else if !hasProperties {
			v.add(p+".portKey", "needs a config file in %q format to hold the key", FormatProperties)
		}
	}
	v.health(p+".health", c.Health)
	if !c.RoleProbe.IsZero() {
		v.roleProbe(p+".roleProbe", c.RoleProbe)
	}
}

func (v *validator) roleProbe(p string, r RoleProbe) {
	switch {
	case (r.TCP == "") == (r.Command == nil):
		v.add(p, "exactly one of tcp and command is required")
	case r.TCP != "":
		if v.template(p+".tcp", r.TCP) {
			if host, port, err := net.SplitHostPort(mustExpand(r.TCP)); err != nil || host == "" || port == "" {
				v.add(p+".tcp", "must be host:port, e.g. {dataIp}:{serverPort}")
			}
		}
		if len(r.Send) > 1024 {
			v.add(p+".send", "must be at most 1024 bytes")
		}
	default:
		if r.Send != "" {
			v.add(p+".send", "only a tcp probe sends")
		}
		v.argv(p+".command", r.Command, "command")
	}
	if r.Leader == "" {
		v.add(p+".leader", "is required: a regular expression the leader's answer matches")
	} else if _, err := regexp.Compile(r.Leader); err != nil {
		v.add(p+".leader", "%v", err)
	}
	if r.TimeoutSeconds < 0 || r.TimeoutSeconds > 60 {
		v.add(p+".timeoutSeconds", "must be from 0 (the default) to 60")
	}
}

// target records where config file i is written (key) and reports a file
// of the component written there already; what names the place as the
// manifest says it.
func (v *validator) target(p, what, key string, i int, targets map[string]int) {
	if j, dup := targets[key]; dup {
		v.add(p, "%q is where configFiles[%d] is written too", what, j)
		return
	}
	targets[key] = i
}

func (v *validator) health(p string, h Health) {
	n := 0
	if h.TCP != "" {
		n++
		if v.template(p+".tcp", h.TCP) {
			host, port, err := net.SplitHostPort(mustExpand(h.TCP))
			if err != nil || host == "" {
				v.add(p+".tcp", "must be host:port, e.g. {managerIp}:{serverPort}")
			} else if pn, err := strconv.Atoi(port); err != nil || pn < 1 || pn > 65535 {
				v.add(p+".tcp", "the port must be a number from 1 to 65535 or {serverPort}")
			}
		}
	}
	if h.HTTP != "" {
		n++
		if v.template(p+".http", h.HTTP) {
			u, err := url.Parse(mustExpand(h.HTTP))
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.add(p+".http", "must be an http:// or https:// URL with a host, e.g. http://{managerIp}:8222/healthz")
			}
		}
	}
	if h.Command != nil {
		n++
		v.argv(p+".command", h.Command, "command")
	}
	if n != 1 {
		v.add(p, "exactly one of tcp, http and command is required, not %d", n)
	}
	for _, f := range []struct {
		name   string
		val    int
		maxVal int
	}{{"timeoutSeconds", h.TimeoutSeconds, 300}, {"intervalSeconds", h.IntervalSeconds, 3600}, {"startSeconds", h.StartSeconds, 3600}} {
		if f.val < 0 || f.val > f.maxVal {
			v.add(p+"."+f.name, "must be from 0 (the default) to %d", f.maxVal)
		}
	}
}

// badPath says what is wrong with a path inside the package, or "".
func badPath(p string) string {
	switch {
	case p == "":
		return "is required"
	case strings.IndexByte(p, 0) >= 0:
		return "must not contain a NUL byte"
	case strings.HasPrefix(p, "/"):
		return "must be relative to the package root"
	case strings.Contains(p, `\`):
		return `must use "/", not "\"`
	case slices.Contains(strings.Split(p, "/"), ".."):
		return `must not contain ".."`
	case path.Clean(p) != p || p == ".":
		return fmt.Sprintf("must be a clean path to a file (%q, not %q)", path.Clean(p), p)
	case strings.ContainsAny(p, "{}"):
		return "is a path in the package and may not use {variables} or braces"
	}
	return ""
}

// Refs returns the variables template s refers to, in order, or an error if
// s is not a well-formed template or uses a name that is not in Variables.
func Refs(s string) ([]string, error) {
	var refs []string
	_, err := expand(s, func(name string) (string, error) {
		refs = append(refs, name)
		return "", nil
	})
	return refs, err
}

// Expand fills the variables of template s from vars; a variable missing
// from vars is an error.
func Expand(s string, vars map[string]string) (string, error) {
	return expand(s, func(name string) (string, error) {
		val, ok := vars[name]
		if !ok {
			return "", fmt.Errorf("no value for {%s}", name)
		}
		return val, nil
	})
}

func mustExpand(s string) string {
	out, _ := Expand(s, sample)
	return out
}

func expand(s string, value func(string) (string, error)) (string, error) {
	var b strings.Builder
	err := segments(s, func(lit, name string) error {
		if name == "" {
			b.WriteString(lit)
			return nil
		}
		val, err := value(name)
		b.WriteString(val)
		return err
	})
	if err != nil {
		return "", err
	}
	return b.String(), nil
}

// segments calls each, in order, with the literal text of template s
// (braces unescaped; name empty) and with the name of each variable it
// refers to.
func segments(s string, each func(lit, name string) error) error {
	start := 0 // of the literal text not yet given to each
	var lit strings.Builder
	flush := func(end int) error {
		lit.WriteString(s[start:end])
		if lit.Len() == 0 {
			return nil
		}
		err := each(lit.String(), "")
		lit.Reset()
		return err
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '{' && strings.HasPrefix(s[i:], "{{"), c == '}' && strings.HasPrefix(s[i:], "}}"):
			lit.WriteString(s[start : i+1])
			i += 2
			start = i
		case c == '}':
			return fmt.Errorf(`stray "}" at byte %d (write "}}" for a literal brace)`, i)
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return fmt.Errorf(`unclosed "{" at byte %d (write "{{" for a literal brace)`, i)
			}
			name := s[i+1 : i+end]
			if !slices.Contains(Variables, name) {
				return fmt.Errorf("unknown variable {%s}; known: {%s}", truncate(name, 40), strings.Join(Variables, "} {"))
			}
			if err := flush(i); err != nil {
				return err
			}
			if err := each("", name); err != nil {
				return err
			}
			i += end + 1
			start = i
		default:
			i++
		}
	}
	return flush(len(s))
}

// Pattern is what a template can expand to (see Matcher).
type Pattern struct {
	// parts are the literal pieces: a free variable stands between each
	// two (so one part means no free variable; an empty first or last
	// part, one at the start or end).
	parts []string
}

// Matcher returns the Pattern of what template s can expand to when the
// variables in fixed have those values and every other variable any
// value: the agent checks with it that a command it is asked to run is
// one the package declares, without knowing every variable. Matching is
// byte for byte.
func Matcher(s string, fixed map[string]string) (*Pattern, error) {
	parts := []string{""}
	wild := false // the last thing seen is a free variable
	err := segments(s, func(lit, name string) error {
		if v, ok := fixed[name]; name != "" && !ok {
			if !wild {
				parts = append(parts, "")
			}
			wild = true
			return nil
		} else if ok {
			lit = v
		}
		parts[len(parts)-1] += lit
		wild = false
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Pattern{parts: parts}, nil
}

// Match reports whether v is one of the pattern's expansions.
func (p *Pattern) Match(v string) bool {
	first, last := p.parts[0], p.parts[len(p.parts)-1]
	if len(p.parts) == 1 {
		return v == first
	}
	if len(v) < len(first)+len(last) || !strings.HasPrefix(v, first) || !strings.HasSuffix(v, last) {
		return false
	}
	v = v[len(first) : len(v)-len(last)]
	for _, l := range p.parts[1 : len(p.parts)-1] {
		i := strings.Index(v, l)
		if i < 0 {
			return false
		}
		v = v[i+len(l):]
	}
	return true
}

func kindOf(k string) string {
	switch k {
	case "int", "int64", "float64":
		return "number"
	case "struct", "map":
		return "object"
	case "slice":
		return "array"
	}
	return k
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// checkKeys walks the document's tokens against the Manifest type and
// refuses what encoding/json lets through (unknown or wrongly-cased fields,
// duplicate keys, trailing data) and wrong types, naming the JSON path of
// each; encoding/json leaves map keys out of its paths.
func checkKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	w := keyWalker{dec: dec}
	if err := w.value(manifestShape, ""); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return w.fail("", "the manifest must hold exactly one JSON object")
	}
	return nil
}

// shape is the part of a type's structure the key walker needs.
type shape struct {
	kind   string            // "object", "array", "string", "integer" or "boolean"
	fields map[string]*shape // a struct's fields
	elem   *shape            // a map's values or an array's items
	isMap  bool
}

// manifestShape is derived from the Manifest type's json tags, so the
// walker and the decoder always agree on the field names.
var manifestShape = shapeOf(reflect.TypeFor[Manifest]())

func shapeOf(t reflect.Type) *shape {
	switch t.Kind() {
	case reflect.Struct:
		s := &shape{kind: "object", fields: map[string]*shape{}}
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			s.fields[name] = shapeOf(f.Type)
		}
		return s
	case reflect.Map:
		return &shape{kind: "object", isMap: true, elem: shapeOf(t.Elem())}
	case reflect.Slice, reflect.Array:
		return &shape{kind: "array", elem: shapeOf(t.Elem())}
	case reflect.String:
		return &shape{kind: "string"}
	case reflect.Int, reflect.Int64:
		return &shape{kind: "integer"}
	case reflect.Bool:
		return &shape{kind: "boolean"}
	}
	panic("manifest: no JSON shape for " + t.String())
}

type keyWalker struct {
	dec *json.Decoder
}

func (w *keyWalker) fail(p, format string, args ...any) error {
	return &Error{Problems: []Problem{{Path: p, Reason: fmt.Sprintf(format, args...)}}}
}

func (w *keyWalker) syntax(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return w.fail("", "malformed JSON at byte %d: %v", se.Offset, err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return w.fail("", "malformed JSON: the document ends early")
	}
	return w.fail("", "malformed JSON: %v", err)
}

// value reads one value of shape s at path p.
func (w *keyWalker) value(s *shape, p string) error {
	tok, err := w.dec.Token()
	if err != nil {
		return w.syntax(err)
	}
	got := ""
	switch t := tok.(type) {
	case nil:
		return nil // null leaves the field at its zero value, as encoding/json does
	case json.Delim:
		got = map[json.Delim]string{'{': "object", '[': "array"}[t]
	case string:
		got = "string"
	case bool:
		got = "boolean"
	case json.Number:
		got = "number"
		if s.kind == "integer" {
			if _, err := t.Int64(); err != nil {
				return w.fail(p, "want a whole number, got %s", truncate(t.String(), 40))
			}
			return nil
		}
	}
	if got != s.kind && !(got == "number" && s.kind == "integer") {
		return w.fail(p, "want a JSON %s, got %s", strings.Replace(s.kind, "integer", "number", 1), got)
	}
	join := func(k string) string {
		if p == "" {
			return k
		}
		return p + "." + k
	}
	switch got {
	case "object":
		seen := map[string]bool{}
		for w.dec.More() {
			kt, err := w.dec.Token()
			if err != nil {
				return w.syntax(err)
			}
			k, _ := kt.(string)
			if seen[k] {
				return w.fail(join(k), "duplicate key")
			}
			seen[k] = true
			next := s.elem
			if !s.isMap {
				f, known := s.fields[k]
				if !known {
					return w.fail(join(k), "unknown field%s", w.suggest(s, k))
				}
				next = f
			}
			if err := w.value(next, join(k)); err != nil {
				return err
			}
		}
	case "array":
		for i := 0; w.dec.More(); i++ {
			if err := w.value(s.elem, fmt.Sprintf("%s[%d]", p, i)); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	if _, err := w.dec.Token(); err != nil { // the closing delimiter
		return w.syntax(err)
	}
	return nil
}

// suggest names the field k was probably meant to be.
func (w *keyWalker) suggest(s *shape, k string) string {
	for f := range s.fields {
		if strings.EqualFold(f, k) {
			return fmt.Sprintf(" (did you mean %q? names are case-sensitive)", f)
		}
	}
	known := make([]string, 0, len(s.fields))
	for f := range s.fields {
		known = append(known, f)
	}
	slices.Sort(known)
	return "; known: " + strings.Join(known, ", ")
}
