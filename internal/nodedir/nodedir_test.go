package nodedir

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	refused := []string{
		"/", "/etc", "/etc/admq", "/usr", "/usr/lib", "/usr/local/admq", "/proc/1", "/sys", "/dev/shm/x",
		"/boot", "/run/admq", "/bin", "/sbin", "/lib", "/lib64/x", "/root", "/root/admq", "/var/run/x",
		"/var", "/var/lib", "/var/log", "/var/tmp", "/tmp", "/home", "/home/alice", "/opt", "/srv", "/mnt",
		"/var/lib/dpkg", "/var/lib/systemd/x", "relative", "/tmp/../etc", "/opt/x/",
	}
	allowed := []string{
		"/opt/admq", "/opt/admq/mq1/zk-1", "/data/zk", "/var/lib/admq/zk-1", "/var/lib/zookeeper", "/srv/admq",
		"/home/alice/admq", "/tmp/admq-test", "/mnt/disk1/admq", "/usrx", "/etcetera/x", "/data",
	}
	for _, p := range refused {
		if err := Check(p); err == nil {
			t.Errorf("Check(%q) = nil, want refused", p)
		}
	}
	for _, p := range allowed {
		if err := Check(p); err != nil {
			t.Errorf("Check(%q) = %v, want allowed", p, err)
		}
	}
	if err := Check("/usr/lib/x"); err == nil || !strings.Contains(err.Error(), "/usr and everything under it") {
		t.Errorf("Check(/usr/lib/x) = %v: want the rule in the reason", err)
	}
}

func TestOverlapsAndHomes(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"/a/b", "/a/b", true}, {"/a", "/a/b", true}, {"/a/b", "/a", true}, {"/a/b", "/a/bc", false}, {"/a/b", "/c", false},
	} {
		if got := Overlaps(c.a, c.b); got != c.want {
			t.Errorf("Overlaps(%s, %s) = %v", c.a, c.b, got)
		}
	}
	homes := PasswdHomes(strings.NewReader("root:x:0:0:root:/root:/bin/bash\n# comment\nbroken line\n" +
		"postgres:x:105:111:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nweird:x:1:1::relative:/bin/sh\n"))
	if want := []string{"/root", "/var/lib/postgresql", "/nonexistent"}; strings.Join(homes, ",") != strings.Join(want, ",") {
		t.Fatalf("PasswdHomes = %v, want %v", homes, want)
	}
	if err := CheckHomes("/var/lib/postgresql", homes); err == nil {
		t.Error("a user's home dir accepted")
	}
	if err := CheckHomes("/var/lib/postgresql/admq", homes); err != nil {
		t.Errorf("a dir inside a home dir: %v", err)
	}
	if err := CheckProtected("/srv/admq/data", map[string]string{"/srv/admq": "the manager's data dir"}); err == nil || !strings.Contains(err.Error(), "the manager's data dir") {
		t.Errorf("CheckProtected = %v", err)
	}
}
