package apollo

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/manager/auth"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/consumer"
)

// call is one Open API request: who makes it and what its path names.
type call struct {
	echo.Context
	s        *Server
	consumer consumer.Consumer
	grants   []consumer.Grant
	// operator is the console user the call acts for, once resolved.
	operator string
	// scopeInQuery: the route names its app, cluster and namespace in the
	// query (appId, clusterName, namespaceName), not in its path.
	scopeInQuery bool

	// Set from the path by resolve, for routes whose path names them.
	app  *app
	node *cluster.Node // nil: the default cluster
	ns   *namespace
}

// access says what a route needs of the caller.
type access int

const (
	// accessPublic needs no token.
	accessPublic access = iota
	// accessToken needs an active token; the answer is filtered by its grants.
	accessToken
	// accessRead needs a grant on what the path names.
	accessRead
	// accessModify needs a grant with modify on it.
	accessModify
	// accessRelease needs a grant with release on it.
	accessRelease
	// accessChecked needs a token; the handler checks the grant once it
	// knows what a release id names.
	accessChecked
)

func (a access) String() string {
	switch a {
	case accessPublic:
		return "none"
	case accessToken:
		return "any token"
	case accessRead:
		return "read"
	case accessModify:
		return "modify"
	case accessRelease:
		return "release"
	}
	return "read or release, checked against what the release belongs to"
}

// wrap builds the handler of r: token, env, grant and path checks, then
// r's handler.
func (s *Server) wrap(r route) echo.HandlerFunc {
	return func(c echo.Context) error {
		x := &call{Context: c, s: s, scopeInQuery: r.scopeInQuery}
		c.Set(ctxCall, x)
		if r.access != accessPublic {
			if err := x.authenticate(); err != nil {
				return err
			}
		}
		if containsParam(r.path, "env") {
			if err := x.checkEnv(); err != nil {
				return err
			}
		}
		if r.access == accessRead || r.access == accessModify || r.access == accessRelease {
			if err := x.resolve(r.access); err != nil {
				return err
			}
		}
		return r.handler(x)
	}
}

func containsParam(path, name string) bool {
	return strings.Contains(path, "/:"+name+"/") || strings.HasSuffix(path, "/:"+name)
}

// authenticate takes the raw token from Authorization, as Apollo does: no
// "Bearer" scheme.
func (x *call) authenticate() error {
	token := x.Request().Header.Get(echo.HeaderAuthorization)
	c, grants, err := x.s.d.Consumers.Authenticate(x.Request().Context(), token)
	if errors.Is(err, consumer.ErrTokenRefused) {
		return newError(http.StatusUnauthorized, "Unauthorized: the Authorization header must hold an active Open API token (as it is, without Bearer)")
	}
	if err != nil {
		return err
	}
	x.consumer, x.grants = c, grants
	return nil
}

// checkEnv accepts the env of the path if it names this manager's
// environment, as Apollo matches names (case-insensitive, PROD for PRO).
func (x *call) checkEnv() error {
	env, err := x.param("env")
	if err != nil {
		return err
	}
	if NormalizeEnv(env) != x.s.d.Env {
		return badRequest("env %s does not exist: this manager serves env %s", env, x.s.d.Env)
	}
	return nil
}

// param returns the path parameter name, unescaped; or, for a route that
// names its scope in the query, that query parameter, which is required.
func (x *call) param(name string) (string, error) {
	if x.scopeInQuery && isScope(name) {
		v := x.QueryParam(name)
		if strings.TrimSpace(v) == "" {
			return "", badRequest("%s should not be null or empty", name)
		}
		return v, nil
	}
	v, err := url.PathUnescape(x.Param(name))
	if err != nil {
		return "", badRequest("path parameter %s is not a valid escaped path segment", name)
	}
	return v, nil
}

// resolve finds what the path names (app, cluster, namespace) and checks
// that a grant allows need on it. Grants are checked before anything is
// looked up, so a token learns nothing about apps it has no grant on.
func (x *call) resolve(need access) error {
	appID, err := x.param("appId")
	if err != nil {
		return err
	}
	if !x.hasApp(appID) {
		return forbidden("Access is denied: the token has no grant on app %s", appID)
	}
	a, err := x.s.d.Catalog.loadApp(x.Request().Context(), appID)
	if errors.Is(err, cluster.ErrClusterNotFound) {
		return notFound("app %s not found", appID)
	}
	if err != nil {
		return err
	}
	x.app = a
	if !x.names("clusterName") {
		if need != accessRead && !x.coversApp(need, appID) {
			return forbidden("Access is denied: the token has no %s grant on the whole of app %s", need, appID)
		}
		return nil
	}
	clusterName, err := x.param("clusterName")
	if err != nil {
		return err
	}
	if x.node, err = a.resolveCluster(clusterName); err != nil {
		return notFound("%v", err)
	}
	if !x.names("namespaceName") {
		if !x.coversCluster(need, appID, clusterName) {
			return forbidden("Access is denied: the token has no %s grant on cluster %s of app %s", need, clusterName, appID)
		}
		return nil
	}
	nsName, err := x.param("namespaceName")
	if err != nil {
		return err
	}
	if x.ns, err = a.resolveNamespace(x.node, nsName); err != nil {
		if errors.Is(err, errNamespaceAmbiguous) {
			return badRequest("%v", err)
		}
		return notFound("%v", err)
	}
	if !x.covers(need, appID, clusterName, x.ns) {
		return forbidden("Access is denied: the token has no %s grant on namespace %s of cluster %s of app %s", need, nsName, clusterName, appID)
	}
	return nil
}

// isScope reports whether name is one of the parameters that name what a
// call is about.
func isScope(name string) bool {
	return name == "appId" || name == "clusterName" || name == "namespaceName"
}

// names reports whether the call names the scope parameter name.
func (x *call) names(name string) bool {
	return x.scopeInQuery || x.Param(name) != ""
}

// clusterName is the name of the resolved cluster.
func (x *call) clusterName() string {
	if x.node == nil {
		return DefaultCluster
	}
	return x.node.NodeDir
}

// hasApp reports whether any grant names app.
func (x *call) hasApp(appID string) bool {
	for _, g := range x.grants {
		if g.AppID == appID {
			return true
		}
	}
	return false
}

// coversApp reports whether a grant allows need on every cluster and
// namespace of the app.
func (x *call) coversApp(need access, appID string) bool {
	for _, g := range x.grants {
		if g.AppID == appID && g.ClusterName == "" && g.NamespaceName == "" && allows(g, need) {
			return true
		}
	}
	return false
}

func allows(g consumer.Grant, need access) bool {
	switch need {
	case accessModify:
		return g.Modify
	case accessRelease:
		return g.Release
	}
	return true
}

// coversCluster reports whether a grant allows need on some namespace of
// the cluster.
func (x *call) coversCluster(need access, appID, clusterName string) bool {
	for _, g := range x.grants {
		if g.AppID == appID && (g.ClusterName == "" || g.ClusterName == clusterName) && allows(g, need) {
			return true
		}
	}
	return false
}

// covers reports whether a grant allows need on the namespace of the
// cluster.
func (x *call) covers(need access, appID, clusterName string, ns *namespace) bool {
	for _, g := range x.grants {
		if g.Covers(appID, clusterName, ns.qualified()) && allows(g, need) {
			return true
		}
	}
	return false
}

// resolveOperator picks the operator from the query or else the body, and
// checks that it is a console user, as Apollo does.
func (x *call) resolveOperator(fromBody string) error {
	op := x.QueryParam("operator")
	if strings.TrimSpace(op) == "" {
		op = fromBody
	}
	if strings.TrimSpace(op) == "" {
		return badRequest("operator should not be null or empty")
	}
	if _, err := x.s.d.Users.UserByName(x.Request().Context(), op); err != nil {
		if errors.Is(err, auth.ErrUserNotFound) {
			return badRequest("[operator: %s] user not exist: an operator must be a user of the console", truncate(op, 128))
		}
		return err
	}
	x.operator = op
	return nil
}

// detail records a short description of the call for the audit log.
func (x *call) detail(format string, args ...any) {
	x.Set(ctxDetail, sprintf(format, args...))
}

// decode reads a JSON body into dst. Fields dst does not name are ignored,
// as Apollo ignores them; a wrong type, bad JSON or a second value is a
// 400. An empty body (or JSON null) leaves dst alone and reports false.
func (x *call) decode(dst any) (bool, error) {
	req := x.Request()
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return false, badRequest("Content type '%s' not supported: send application/json", truncate(ct, 128))
		}
	}
	raw, err := io.ReadAll(req.Body)
	if err != nil {
		return false, err
	}
	if len(strings.TrimSpace(string(raw))) == 0 || strings.TrimSpace(string(raw)) == "null" {
		return false, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(dst); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return false, badRequest("malformed JSON at byte %d", se.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return false, badRequest("malformed JSON: the body ends before the value does")
		case errors.As(err, &te):
			return false, badRequest("field %s: want a JSON %s, got %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		return false, badRequest("bad JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return false, badRequest("request body must hold exactly one JSON value")
	}
	return true, nil
}

func jsonKind(k string) string {
	switch k {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	case "struct", "map", "ptr":
		return "object"
	case "slice", "array":
		return "array"
	}
	return k
}

// boolQuery reads an optional true/false query parameter.
func (x *call) boolQuery(name string) (bool, error) {
	v := x.QueryParam(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("%s must be true or false", name)
	}
	return b, nil
}

// intQuery reads an optional whole-number query parameter within [min, max].
func (x *call) intQuery(name string, def, min, max int) (int, error) {
	v := x.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, badRequest("%s must be a whole number from %d to %d", name, min, max)
	}
	return n, nil
}
