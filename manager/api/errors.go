package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"syscall"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/auth"
	"github.com/admq/admq-manager/manager/bootstrap"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/consumer"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/fleetop"
	"github.com/admq/admq-manager/manager/pkg"
)

// Envelope codes. The seed's codes keep their numbers; the ones marked new
// are ours, in the same style, and listed in the OpenAPI document.
const (
	codeOK                  = 0
	codeError               = 1
	codeParamInvalid        = 2 // new
	codeNotFound            = 3 // new
	codeMethodNotAllowed    = 4 // new
	codeRequestTooLarge     = 5 // new
	codeAuthorizeFailed     = 6
	codeTooManyAttempts     = 8 // new
	codeDiskFull            = 9 // new
	codePermissionDeny      = 7
	codeSSHCommandFailed    = 15
	codeTokenInvalid        = 202
	codePackageNeed         = 1202
	codePackageNameIllegal  = 1204
	codePackageExist        = 1205 // new
	codePackageIllegal      = 1206 // new
	codePackageNotExist     = 1207 // new
	codePackageInUse        = 1208 // new
	codeServerInUse         = 1266 // new
	codeServerDirIllegal    = 1250
	codeServerExist         = 1251
	codeServerCannotConnect = 1253
	codePlatformUnsupported = 1254 // new
	codeAgentBinaryMissing  = 1255 // new
	codeHostKeyNotExist     = 1256 // new
	codeServerNotExist      = 1262
	codeAreaExist           = 1263
	codeAreaNotExist        = 1264
	codeAreaInUse           = 1265 // new
	codeJoinTokenNotExist   = 1270 // new
	codeUserExist           = 1280 // new
	codeUserNotExist        = 1281 // new
	codeLastAdmin           = 1282 // new
	// Third-party apps of the Open API.
	codeConsumerNotExist = 1290 // new
	codeConsumerExist    = 1291 // new
	codeGrantNotExist    = 1292 // new
	codeGrantExist       = 1293 // new
	codeConsumerRevoked  = 1294 // new
	// Clusters.
	codeClusterNameExist      = 1000
	codeClusterNotExist       = 1001 // new
	codeNodeNotExist          = 1002 // new
	codeConfigFileNotExist    = 1003 // new
	codeConfigItemNotExist    = 1004 // new
	codeConfigItemExist       = 1005 // new
	codeComponentNotInPackage = 1401 // new
	codeNodeServerRepeated    = 1402 // new
	codePackageDisabled       = 1403 // new
	codeTooManyNodes          = 1404 // new
	codeConfigRenderFailed    = 1405 // new
	// Deployment.
	codeNothingToDeploy  = 1406
	codeNodeUnavailable  = 1407
	codeJobNotExist      = 1408 // new
	codeNodeNotInstalled = 1409 // new
	// Config releases and rollouts.
	codeNodeHeld         = 1410 // new
	codeQuorumAtRisk     = 1411 // new
	codeReleaseNotExist  = 1412 // new
	codeReleaseOtherFile = 1413 // new
	// Fleet-wide operations.
	codeFleetOpNotExist = 1420 // new
)

// codeInfo gives each code its constant name and HTTP status.
var codeInfo = map[int]struct {
	name   string
	status int
}{
	codeOK:                  {"SUCCESS", http.StatusOK},
	codeError:               {"ERROR", http.StatusInternalServerError},
	codeParamInvalid:        {"PARAM_INVALID", http.StatusBadRequest},
	codeNotFound:            {"NOT_FOUND", http.StatusNotFound},
	codeMethodNotAllowed:    {"METHOD_NOT_ALLOWED", http.StatusMethodNotAllowed},
	codeRequestTooLarge:     {"REQUEST_TOO_LARGE", http.StatusRequestEntityTooLarge},
	codeAuthorizeFailed:     {"AUTHORIZE_FAILED", http.StatusUnauthorized},
	codeTooManyAttempts:     {"TOO_MANY_ATTEMPTS", http.StatusTooManyRequests},
	codeDiskFull:            {"DISK_FULL", http.StatusInsufficientStorage},
	codePermissionDeny:      {"PERMISSION_DENY", http.StatusForbidden},
	codeSSHCommandFailed:    {"SSH_COMMAND_EXEC_FAILED", http.StatusBadGateway},
	codeTokenInvalid:        {"TOKEN_INVALID", http.StatusUnauthorized},
	codePackageNeed:         {"PACKAGE_NEED", http.StatusBadRequest},
	codePackageNameIllegal:  {"PACKAGE_NAME_ILLEGAL", http.StatusBadRequest},
	codePackageExist:        {"PACKAGE_EXIST", http.StatusConflict},
	codePackageIllegal:      {"PACKAGE_ILLEGAL", http.StatusBadRequest},
	codePackageNotExist:     {"PACKAGE_NOT_EXIST", http.StatusNotFound},
	codePackageInUse:        {"PACKAGE_IN_USE", http.StatusConflict},
	codeServerInUse:         {"SERVER_IN_USE", http.StatusConflict},
	codeServerDirIllegal:    {"SERVER_DIR_ILLEGAL", http.StatusBadRequest},
	codeServerExist:         {"SERVER_EXIST", http.StatusConflict},
	codeServerCannotConnect: {"SERVER_CANNOT_CONNECT", http.StatusBadGateway},
	codePlatformUnsupported: {"SERVER_PLATFORM_UNSUPPORTED", http.StatusBadRequest},
	codeAgentBinaryMissing:  {"AGENT_BINARY_MISSING", http.StatusInternalServerError},
	codeHostKeyNotExist:     {"HOST_KEY_NOT_EXIST", http.StatusNotFound},
	codeServerNotExist:      {"SERVER_NOT_EXIST", http.StatusNotFound},
	codeAreaExist:           {"AREA_EXIST", http.StatusConflict},
	codeAreaNotExist:        {"AREA_NOT_EXIST", http.StatusNotFound},
	codeAreaInUse:           {"AREA_IN_USE", http.StatusConflict},
	codeJoinTokenNotExist:   {"JOIN_TOKEN_NOT_EXIST", http.StatusNotFound},
	codeUserExist:           {"USER_EXIST", http.StatusConflict},
	codeUserNotExist:        {"USER_NOT_EXIST", http.StatusNotFound},
	codeLastAdmin:           {"LAST_ADMIN", http.StatusConflict},

	// Third-party apps.
	codeConsumerNotExist: {"CONSUMER_NOT_EXIST", http.StatusNotFound},
	codeConsumerExist:    {"CONSUMER_EXIST", http.StatusConflict},
	codeGrantNotExist:    {"GRANT_NOT_EXIST", http.StatusNotFound},
	codeGrantExist:       {"GRANT_EXIST", http.StatusConflict},
	codeConsumerRevoked:  {"CONSUMER_REVOKED", http.StatusConflict},

	// Clusters.
	codeClusterNameExist:      {"CLUSTER_NAME_EXIST", http.StatusConflict},
	codeClusterNotExist:       {"CLUSTER_NOT_EXIST", http.StatusNotFound},
	codeNodeNotExist:          {"NODE_NOT_EXIST", http.StatusNotFound},
	codeConfigFileNotExist:    {"CONFIG_FILE_NOT_EXIST", http.StatusNotFound},
	codeConfigItemNotExist:    {"CONFIG_ITEM_NOT_EXIST", http.StatusNotFound},
	codeConfigItemExist:       {"CONFIG_ITEM_EXIST", http.StatusConflict},
	codeComponentNotInPackage: {"COMPONENT_NOT_IN_PACKAGE", http.StatusBadRequest},
	codeNodeServerRepeated:    {"NODE_SERVER_REPEATED", http.StatusBadRequest},
	codePackageDisabled:       {"PACKAGE_DISABLED", http.StatusBadRequest},
	codeTooManyNodes:          {"TOO_MANY_NODES", http.StatusBadRequest},
	codeConfigRenderFailed:    {"CONFIG_RENDER_FAILED", http.StatusBadRequest},

	// Deployment.
	codeNothingToDeploy:  {"DEPLOYED_NODE_MISS_OR_NOT_FOUND", http.StatusNotFound},
	codeNodeUnavailable:  {"NODE_UNDER_CAN_NOT_DEPLOYED", http.StatusConflict},
	codeJobNotExist:      {"JOB_NOT_EXIST", http.StatusNotFound},
	codeNodeNotInstalled: {"NODE_NOT_INSTALLED", http.StatusConflict},

	// Config releases and rollouts.
	codeNodeHeld:         {"NODE_HELD_BY_JOB", http.StatusConflict},
	codeQuorumAtRisk:     {"QUORUM_AT_RISK", http.StatusConflict},
	codeReleaseNotExist:  {"RELEASE_NOT_EXIST", http.StatusNotFound},
	codeReleaseOtherFile: {"RELEASE_OF_OTHER_FILE", http.StatusBadRequest},
	codeFleetOpNotExist:  {"FLEET_OPERATION_NOT_EXIST", http.StatusNotFound},
}

// apiError is an error with its envelope code and details.
type apiError struct {
	code    int
	message string
	data    any
}

func (e *apiError) Error() string { return e.message }

func newError(code int, format string, args ...any) *apiError {
	return &apiError{code: code, message: fmt.Sprintf(format, args...)}
}

// domainCodes is the one table from domain errors to envelope codes.
var domainCodes = []struct {
	err  error
	code int
}{
	{fleet.ErrAreaExists, codeAreaExist},
	{fleet.ErrAreaNotFound, codeAreaNotExist},
	{fleet.ErrAreaInUse, codeAreaInUse},
	{fleet.ErrServerExists, codeServerExist},
	{fleet.ErrServerNotFound, codeServerNotExist},
	{fleet.ErrServerInUse, codeServerInUse},
	{fleet.ErrDirsNested, codeServerDirIllegal},
	{cluster.ErrDirRefused, codeServerDirIllegal},
	{fleet.ErrAgentNotOnline, codeServerCannotConnect},
	{auth.ErrBadCredentials, codeAuthorizeFailed},
	{auth.ErrTokenInvalid, codeTokenInvalid},
	{auth.ErrUserExists, codeUserExist},
	{auth.ErrUserNotFound, codeUserNotExist},
	{auth.ErrLastAdmin, codeLastAdmin},
	{enroll.ErrTokenNotFound, codeJoinTokenNotExist},
	{consumer.ErrNotFound, codeConsumerNotExist},
	{consumer.ErrAppIDExists, codeConsumerExist},
	{consumer.ErrGrantNotFound, codeGrantNotExist},
	{consumer.ErrGrantExists, codeGrantExist},
	{consumer.ErrConsumerRevoked, codeConsumerRevoked},
	{bootstrap.ErrUnreachable, codeServerCannotConnect},
	{bootstrap.ErrAuthFailed, codeServerCannotConnect},
	{bootstrap.ErrHostKeyChanged, codeServerCannotConnect},
	{bootstrap.ErrAgentTimeout, codeServerCannotConnect},
	{bootstrap.ErrCommandFailed, codeSSHCommandFailed},
	{bootstrap.ErrAgentInstalled, codeServerExist},
	{bootstrap.ErrUnsupportedPlatform, codePlatformUnsupported},
	{bootstrap.ErrAgentBinaryMissing, codeAgentBinaryMissing},
	{bootstrap.ErrHostKeyNotFound, codeHostKeyNotExist},
	{pkg.ErrPackageNeeded, codePackageNeed},
	{pkg.ErrNameIllegal, codePackageNameIllegal},
	{pkg.ErrPackageExists, codePackageExist},
	{pkg.ErrPackageNotFound, codePackageNotExist},
	{pkg.ErrPackageInUse, codePackageInUse},
	{pkg.ErrManifest, codePackageIllegal},
	{pkg.ErrArchiveUnsafe, codePackageIllegal},
	{pkg.ErrArchiveInvalid, codePackageIllegal},
	{pkg.ErrTooLarge, codeRequestTooLarge},
	{pkg.ErrUploadInterrupted, codeParamInvalid},
	{cluster.ErrClusterExists, codeClusterNameExist},
	{cluster.ErrClusterNotFound, codeClusterNotExist},
	{cluster.ErrNodeNotFound, codeNodeNotExist},
	{config.ErrFileNotFound, codeConfigFileNotExist},
	{config.ErrItemNotFound, codeConfigItemNotExist},
	{config.ErrItemExists, codeConfigItemExist},
	{config.ErrNodeNotFound, codeNodeNotExist},
	{cluster.ErrComponentNotInPackage, codeComponentNotInPackage},
	{cluster.ErrServerRepeated, codeNodeServerRepeated},
	{cluster.ErrPackageDisabled, codePackageDisabled},
	{cluster.ErrTooManyNodes, codeTooManyNodes},
	{config.ErrRender, codeConfigRenderFailed},
	{deploy.ErrNothingToDeploy, codeNothingToDeploy},
	{deploy.ErrNodeUnavailable, codeNodeUnavailable},
	{deploy.ErrJobNotFound, codeJobNotExist},
	{deploy.ErrNodeHeld, codeNodeHeld},
	{deploy.ErrQuorum, codeQuorumAtRisk},
	{config.ErrReleaseNotFound, codeReleaseNotExist},
	{config.ErrOtherFile, codeReleaseOtherFile},
	{fleetop.ErrNotFound, codeFleetOpNotExist},
	// The node exists but its agent does not know it: never deployed there.
	{deploy.ErrNodeNotInstalled, codeNodeNotInstalled},
	{deploy.ErrAgentConflict, codeNodeUnavailable},
}

// classify turns any handler error into an apiError; internal errors lose
// their text, which goes to the log instead.
func classify(err error) (ae *apiError, internal bool) {
	if errors.As(err, &ae) {
		return ae, false
	}
	// The manager's own disk, whatever was being written (the database,
	// an upload): the client did nothing wrong and may retry once there
	// is space. The details (paths) go to the log.
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return newError(codeDiskFull, "the manager's disk is full: nothing was written; free space in its data dir, then retry"), true
	}
	for _, d := range domainCodes {
		if errors.Is(err, d.err) {
			return &apiError{code: d.code, message: err.Error(), data: errorData(err)}, false
		}
	}
	if e, ok := invalid.As(err); ok {
		return &apiError{code: codeParamInvalid, message: e.Error(), data: map[string]string{"field": e.Field, "reason": e.Reason}}, false
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return newError(codeRequestTooLarge, "request body larger than %d bytes", mbe.Limit), false
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return newError(codeNotFound, "no such route"), false
		case http.StatusMethodNotAllowed:
			return newError(codeMethodNotAllowed, "method not allowed on this route"), false
		case http.StatusRequestEntityTooLarge:
			return newError(codeRequestTooLarge, "request body too large"), false
		case http.StatusUnauthorized:
			return newError(codeTokenInvalid, "not logged in"), false
		case http.StatusBadRequest:
			return newError(codeParamInvalid, "%v", he.Message), false
		}
	}
	return newError(codeError, "internal error; see the manager log"), true
}

// JobError is the code and data this API answers for err: what a job
// that failed with err keeps (deploy.Deps.ErrorCode), so that a client
// following it learns what the synchronous call would have told it.
func JobError(err error) (int, map[string]any) {
	ae, _ := classify(err)
	switch d := ae.data.(type) {
	case map[string]any:
		return ae.code, d
	case map[string]string:
		m := make(map[string]any, len(d))
		for k, v := range d {
			m[k] = v
		}
		return ae.code, m
	}
	return ae.code, nil
}

// errorData is the details a domain error offers for the envelope's data
// (for example a failed SSH command's stderr), or nil.
func errorData(err error) any {
	var d interface{ ErrorData() map[string]any }
	if errors.As(err, &d) {
		return d.ErrorData()
	}
	return nil
}

// writeError sends the envelope for err.
func writeError(c echo.Context, ae *apiError) error {
	info, known := codeInfo[ae.code]
	if !known {
		info = codeInfo[codeError]
	}
	c.Set(ctxCode, ae.code)
	if c.Response().Committed {
		return nil
	}
	if c.Request().Method == http.MethodHead {
		return c.NoContent(info.status)
	}
	return c.JSON(info.status, envelope{Code: ae.code, Msg: info.name, Message: ae.message, Data: ae.data})
}

// jsonError turns a decoding failure into a clear message.
func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.As(err, &se):
		return invalid.Field("", "malformed JSON at byte %d: %v", se.Offset, err)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return invalid.Field(field, "want a JSON %s, got %s", jsonKind(te.Type.Kind().String()), te.Value)
	}
	return invalid.Field("", "bad JSON body: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	}
	return k
}
