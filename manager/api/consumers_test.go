package api

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestConsumers(t *testing.T) {
	h := newHarness(t)
	admin := h.login("admin", adminPassword)
	body := map[string]any{"appId": "ci-bot", "name": "CI", "orgId": "dev", "orgName": "Dev", "ownerName": "ops", "ownerEmail": "ops@example.com"}

	for _, role := range []string{"operator", "viewer"} {
		if r := h.call("POST", "/consumer", h.userToken(role), body); r.Status != 403 || r.Code != codePermissionDeny {
			t.Fatalf("%s creates a consumer: %+v", role, r)
		}
	}
	r := h.call("POST", "/consumer", admin, body)
	if r.Code != 0 {
		t.Fatalf("create: %+v", r)
	}
	var created struct {
		ID, AppID, Token, Status string
		ExpireTime               *string
	}
	json.Unmarshal(r.Data, &created)
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(created.Token) || created.Status != "active" || created.ExpireTime != nil || created.AppID != "ci-bot" {
		t.Fatalf("created %s", r.Data)
	}
	if r := h.call("POST", "/consumer", admin, body); r.Status != 409 || r.Code != codeConsumerExist {
		t.Fatalf("same appId again: %+v", r)
	}
	for _, tc := range []struct {
		name string
		body any
	}{
		{"unknown field", map[string]any{"appId": "x", "token": "mine"}},
		{"bad email", map[string]any{"appId": "x", "name": "n", "orgId": "o", "orgName": "o", "ownerName": "o", "ownerEmail": "no"}},
		{"negative ttl", map[string]any{"appId": "x", "name": "n", "orgId": "o", "orgName": "o", "ownerName": "o", "ownerEmail": "o@example.com", "ttlSeconds": -1}},
		{"no body", nil},
	} {
		if r := h.call("POST", "/consumer", admin, tc.body); r.Status != 400 || r.Code != codeParamInvalid {
			t.Errorf("%s: %+v", tc.name, r)
		}
	}

	list := h.call("GET", "/consumer", admin, nil)
	if list.Code != 0 || strings.Contains(string(list.Data), created.Token) || !strings.Contains(string(list.Data), `"total":1`) {
		t.Fatalf("list: %s", list.Data)
	}

	// Grants need an ADMQ cluster that exists.
	if r := h.call("POST", "/consumer/grant", admin, map[string]any{"consumerId": created.ID, "appId": "mq1", "modify": true}); r.Status != 404 || r.Code != codeClusterNotExist {
		t.Fatalf("grant on unknown cluster: %+v", r)
	}
	if r := h.call("POST", "/consumer/grant", admin, map[string]any{"consumerId": "12345", "appId": "mq1"}); r.Status != 404 || r.Code != codeConsumerNotExist {
		t.Fatalf("grant to unknown consumer: %+v", r)
	}
	if r := h.call("GET", "/consumer/grant?consumerId="+created.ID, admin, nil); r.Code != 0 || string(r.Data) != "[]" {
		t.Fatalf("grants: %+v", r)
	}
	if r := h.call("GET", "/consumer/grant", admin, nil); r.Code != codeParamInvalid {
		t.Fatalf("grants without consumerId: %+v", r)
	}
	if r := h.call("DELETE", "/consumer/grant?id=777", admin, nil); r.Status != 404 || r.Code != codeGrantNotExist {
		t.Fatalf("delete unknown grant: %+v", r)
	}

	if r := h.call("DELETE", "/consumer", admin, map[string]string{"id": created.ID}); r.Code != 0 {
		t.Fatalf("revoke: %+v", r)
	}
	if r := h.call("GET", "/consumer", admin, nil); !strings.Contains(string(r.Data), `"status":"revoked"`) {
		t.Fatalf("after revoke: %s", r.Data)
	}
	if r := h.call("DELETE", "/consumer?id=999", admin, nil); r.Status != 404 || r.Code != codeConsumerNotExist {
		t.Fatalf("revoke unknown: %+v", r)
	}
	if r := h.call("POST", "/consumer", admin, body); r.Code != 0 {
		t.Fatalf("the appId of a revoked consumer is free again: %+v", r)
	}
	if r := h.call("GET", "/audit?pageSize=50", admin, nil); !strings.Contains(string(r.Data), "consumer=") || !strings.Contains(string(r.Data), `"consumer":""`) {
		t.Fatalf("audit: %s", r.Data)
	}
}
