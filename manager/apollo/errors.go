package apollo

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/auth"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/consumer"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/manager/fleet"
)

// apiError is an answer other than 200, with Apollo's status and message.
type apiError struct {
	status  int
	message string
}

func (e *apiError) Error() string { return e.message }

func newError(status int, format string, args ...any) *apiError {
	return &apiError{status: status, message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, format, args...)
}

func notFound(format string, args ...any) *apiError {
	return newError(http.StatusNotFound, format, args...)
}

func forbidden(format string, args ...any) *apiError {
	return newError(http.StatusForbidden, format, args...)
}

// exceptionNames are the exception names of Apollo's error bodies, by
// status, as its Open API specification gives them.
var exceptionNames = map[int]string{
	http.StatusBadRequest:          "BadRequestException",
	http.StatusUnauthorized:        "UnauthorizedException",
	http.StatusForbidden:           "AccessDeniedException",
	http.StatusNotFound:            "NotFoundException",
	http.StatusMethodNotAllowed:    "HttpRequestMethodNotSupportedException",
	http.StatusInternalServerError: "ServiceException",
}

// domainStatus is the one table from domain errors to Apollo's statuses.
// Anything else that is not an *apiError or bad input is a 500.
var domainStatus = []struct {
	err    error
	status int
}{
	{consumer.ErrTokenRefused, http.StatusUnauthorized},
	{cluster.ErrClusterNotFound, http.StatusNotFound},
	{cluster.ErrNodeNotFound, http.StatusNotFound},
	{config.ErrFileNotFound, http.StatusNotFound},
	{config.ErrItemNotFound, http.StatusNotFound},
	{auth.ErrUserNotFound, http.StatusBadRequest},
	{config.ErrReleaseNotFound, http.StatusNotFound},
	{config.ErrOtherFile, http.StatusBadRequest},
	// A rollout refused before anything was recorded.
	{fleet.ErrAgentNotOnline, http.StatusBadRequest},
	{deploy.ErrQuorum, http.StatusBadRequest},
	{deploy.ErrNodeHeld, http.StatusBadRequest},
	{deploy.ErrNothingToDeploy, http.StatusBadRequest},
	{config.ErrRender, http.StatusBadRequest},
}

// classify turns a handler error into an answer; internal errors lose
// their text, which goes to the log instead.
func classify(err error) (ae *apiError, internal bool) {
	if errors.As(err, &ae) {
		return ae, false
	}
	for _, d := range domainStatus {
		if errors.Is(err, d.err) {
			return &apiError{status: d.status, message: err.Error()}, false
		}
	}
	if e, ok := invalid.As(err); ok {
		return badRequest("%s", e.Error()), false
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return badRequest("request body larger than %d bytes", mbe.Limit), false
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return notFound("no such Open API path"), false
		case http.StatusMethodNotAllowed:
			return newError(http.StatusMethodNotAllowed, "method not allowed on this path"), false
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			return badRequest("%v", he.Message), false
		case http.StatusUnauthorized:
			return newError(http.StatusUnauthorized, "Unauthorized"), false
		}
	}
	return newError(http.StatusInternalServerError, "internal error; see the manager log"), true
}
