package consumer_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/consumer"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/store/storetest"
)

// scopes knows one app, mq1, with cluster default and namespace zoo.cfg
// of the coordinator.
type scopes struct{}

func (scopes) CanonicalScope(_ context.Context, app, cl, ns string) (string, string, error) {
	if app != "mq1" {
		return "", "", cluster.ErrClusterNotFound
	}
	if cl != "" && cl != "default" {
		return "", "", invalid.Field("clusterName", "no cluster %s", cl)
	}
	switch ns {
	case "":
		return cl, "", nil
	case "zoo.cfg", "coordinator.zoo.cfg":
		return cl, "coordinator.zoo.cfg", nil
	}
	return "", "", invalid.Field("namespaceName", "no namespace %s", ns)
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newService(t *testing.T) (*consumer.Service, *clock) {
	t.Helper()
	db := storetest.Open(t)
	gen, _ := ids.NewGenerator(1)
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return consumer.NewService(db, scopes{}, gen, c.now), c
}

func good() consumer.Spec {
	return consumer.Spec{AppID: "ci-bot", Name: "CI bot", OrgID: "dev", OrgName: "开发部", OwnerName: "ops",
		OwnerEmail: "ops@example.com", CreatedBy: "admin"}
}

func TestCreateRefusesBadInput(t *testing.T) {
	svc, _ := newService(t)
	for _, tc := range []struct {
		name  string
		edit  func(*consumer.Spec)
		field string
	}{
		{"no appId", func(s *consumer.Spec) { s.AppID = "" }, "appId"},
		{"appId with a space", func(s *consumer.Spec) { s.AppID = "ci bot" }, "appId"},
		{"appId too long", func(s *consumer.Spec) { s.AppID = strings.Repeat("a", 65) }, "appId"},
		{"no name", func(s *consumer.Spec) { s.Name = "" }, "name"},
		{"name with a newline", func(s *consumer.Spec) { s.Name = "a\nb" }, "name"},
		{"orgId with a slash", func(s *consumer.Spec) { s.OrgID = "a/b" }, "orgId"},
		{"no ownerEmail", func(s *consumer.Spec) { s.OwnerEmail = "" }, "ownerEmail"},
		{"ownerEmail not an address", func(s *consumer.Spec) { s.OwnerEmail = "ops" }, "ownerEmail"},
		{"ownerEmail with a display name", func(s *consumer.Spec) { s.OwnerEmail = "Ops <ops@example.com>" }, "ownerEmail"},
		{"invalid UTF-8", func(s *consumer.Spec) { s.OrgName = "\xff" }, "orgName"},
		{"negative ttl", func(s *consumer.Spec) { s.TTL = -time.Second }, "ttlSeconds"},
		{"ttl over ten years", func(s *consumer.Spec) { s.TTL = consumer.MaxTTL + time.Second }, "ttlSeconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := good()
			tc.edit(&spec)
			_, err := svc.Create(t.Context(), spec)
			e, ok := invalid.As(err)
			if !ok || e.Field != tc.field {
				t.Fatalf("Create: %v, want bad %s", err, tc.field)
			}
		})
	}
	if list, total, _ := svc.Consumers(t.Context(), pageAll); total != 0 || len(list) != 0 {
		t.Fatalf("refused creates stored %d", total)
	}
}

func TestTokens(t *testing.T) {
	ctx := t.Context()
	svc, clk := newService(t)
	spec := good()
	spec.TTL = time.Hour
	issued, err := svc.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(issued.Token) {
		t.Fatalf("token %q is not 40 hex digits", issued.Token)
	}
	if strings.Contains(string(issued.TokenHash), issued.Token) {
		t.Fatal("the token is stored as it is")
	}
	other, err := svc.Create(ctx, consumer.Spec{AppID: "other", Name: "o", OrgID: "o", OrgName: "o", OwnerName: "o", OwnerEmail: "o@example.com"})
	if err != nil || other.Token == issued.Token {
		t.Fatalf("second consumer: %v (token repeated: %t)", err, other.Token == issued.Token)
	}
	if _, err := svc.Create(ctx, good()); !errors.Is(err, consumer.ErrAppIDExists) {
		t.Fatalf("same appId: %v", err)
	}

	c, grants, err := svc.Authenticate(ctx, issued.Token)
	if err != nil || c.ID != issued.ID || len(grants) != 0 {
		t.Fatalf("Authenticate = %v %v %v", c.ID, grants, err)
	}
	for _, bad := range []string{"", "Bearer " + issued.Token, strings.ToUpper(issued.Token), issued.Token + " ", issued.Token[:39], strings.Repeat("0", 40)} {
		if _, _, err := svc.Authenticate(ctx, bad); !errors.Is(err, consumer.ErrTokenRefused) {
			t.Errorf("Authenticate(%q) = %v, want refused", bad, err)
		}
	}
	clk.t = clk.t.Add(time.Hour)
	if _, _, err := svc.Authenticate(ctx, issued.Token); !errors.Is(err, consumer.ErrTokenRefused) {
		t.Fatalf("expired token: %v", err)
	}
	if _, _, err := svc.Authenticate(ctx, other.Token); err != nil {
		t.Fatalf("token without expiry: %v", err)
	}
	if err := svc.Revoke(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Authenticate(ctx, other.Token); !errors.Is(err, consumer.ErrTokenRefused) {
		t.Fatalf("revoked token: %v", err)
	}
	if err := svc.Revoke(ctx, 12345); !errors.Is(err, consumer.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
}

func TestGrants(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t)
	issued, err := svc.Create(ctx, good())
	if err != nil {
		t.Fatal(err)
	}
	g, err := svc.Grant(ctx, consumer.GrantSpec{ConsumerID: issued.ID, AppID: "mq1", NamespaceName: "zoo.cfg", Modify: true})
	if err != nil {
		t.Fatal(err)
	}
	if g.NamespaceName != "coordinator.zoo.cfg" || g.ClusterName != "" {
		t.Fatalf("grant kept %q/%q, want the qualified namespace", g.ClusterName, g.NamespaceName)
	}
	if !g.Covers("mq1", "coordinator-1", "coordinator.zoo.cfg") || g.Covers("mq2", "default", "coordinator.zoo.cfg") || g.Covers("mq1", "default", "broker.zoo.cfg") {
		t.Fatal("Covers is wrong")
	}
	for _, tc := range []struct {
		name string
		spec consumer.GrantSpec
		want error
	}{
		{"unknown consumer", consumer.GrantSpec{ConsumerID: 1, AppID: "mq1"}, consumer.ErrNotFound},
		{"unknown app", consumer.GrantSpec{ConsumerID: issued.ID, AppID: "nope"}, cluster.ErrClusterNotFound},
		{"same scope", consumer.GrantSpec{ConsumerID: issued.ID, AppID: "mq1", NamespaceName: "coordinator.zoo.cfg", Release: true}, consumer.ErrGrantExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := svc.Grant(ctx, tc.spec); !errors.Is(err, tc.want) {
				t.Fatalf("Grant: %v, want %v", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		spec  consumer.GrantSpec
		field string
	}{
		{"no consumer", consumer.GrantSpec{AppID: "mq1"}, "consumerId"},
		{"no app", consumer.GrantSpec{ConsumerID: issued.ID}, "appId"},
		{"unknown cluster", consumer.GrantSpec{ConsumerID: issued.ID, AppID: "mq1", ClusterName: "broker-9"}, "clusterName"},
		{"unknown namespace", consumer.GrantSpec{ConsumerID: issued.ID, AppID: "mq1", NamespaceName: "x.cfg"}, "namespaceName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := svc.Grant(ctx, tc.spec); func() bool { e, ok := invalid.As(err); return !ok || e.Field != tc.field }() {
				t.Fatalf("Grant: %v, want bad %s", err, tc.field)
			}
		})
	}
	if err := svc.Revoke(ctx, issued.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Grant(ctx, consumer.GrantSpec{ConsumerID: issued.ID, AppID: "mq1", ClusterName: "default"}); !errors.Is(err, consumer.ErrConsumerRevoked) {
		t.Fatalf("grant to a revoked consumer: %v", err)
	}
	if list, err := svc.Grants(ctx, issued.ID); err != nil || len(list) != 1 {
		t.Fatalf("Grants = %v %v", list, err)
	}
	if _, err := svc.Grants(ctx, 42); !errors.Is(err, consumer.ErrNotFound) {
		t.Fatalf("grants of unknown consumer: %v", err)
	}
}

var pageAll = paging.Page{Num: 1, Size: 100}
