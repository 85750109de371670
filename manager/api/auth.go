package api

import (
	"errors"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/auth"
)

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (a *API) login(c echo.Context) error {
	var r loginRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	detail(c, "username=%q", truncate(r.Username, 64))
	if r.Username == "" || r.Password == "" {
		return invalid.Field("username", "username and password are required")
	}
	addr := c.RealIP()
	wait, full, refund := a.logins.reserve(addr, r.Username)
	if wait > 0 {
		secs := retryAfter(c, wait)
		if full {
			return newError(codeTooManyAttempts, "too many recent failed logins from too many clients: new clients are refused for now; try again in %d s", secs)
		}
		return newError(codeTooManyAttempts, "too many failed logins from %s or for this user; try again in %d s", addr, secs)
	}
	// A password check is CPU-bound (bcrypt, ~60 ms): only a few at once,
	// so that logins from many addresses cannot take every core from the
	// API and the agents.
	select {
	case a.checks <- struct{}{}:
		defer func() { <-a.checks }()
	case <-c.Request().Context().Done():
		refund()
		return c.Request().Context().Err()
	}
	token, exp, u, err := a.d.Auth.Login(c.Request().Context(), r.Username, r.Password)
	if errors.Is(err, auth.ErrBadCredentials) {
		return newError(codeAuthorizeFailed, "wrong username or password") // the attempt stays taken
	}
	refund()
	if err != nil {
		return err
	}
	c.Set(ctxUser, u)
	return ok(c, loginView{Token: token, TokenType: "Bearer", ExpireTime: apiTime(exp), Username: u.Username, Role: string(u.Role)})
}

func (a *API) health(c echo.Context) error {
	n := 0
	if a.d.AgentsConnected != nil {
		n = a.d.AgentsConnected()
	}
	zone, offset := a.d.Now().Zone()
	return ok(c, healthView{Status: "ok", AgentsConnected: n, TimeZone: zone, UTCOffsetSeconds: offset})
}

func (a *API) userInfo(c echo.Context) error { return ok(c, toUserView(userOf(c))) }

type passwordRequest struct {
	OldPassword string `json:"oldPassword"`
	NewPassword string `json:"newPassword"`
}

func (a *API) changePassword(c echo.Context) error {
	var r passwordRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	u := userOf(c)
	detail(c, "user=%s", u.Username)
	if err := a.d.Auth.ChangePassword(c.Request().Context(), u.ID, r.OldPassword, r.NewPassword); err != nil {
		if errors.Is(err, auth.ErrBadCredentials) {
			return newError(codeAuthorizeFailed, "the old password is wrong")
		}
		return err
	}
	return ok(c, nil)
}

type userRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

func (a *API) createUser(c echo.Context) error {
	var r userRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	detail(c, "username=%q role=%q", truncate(r.Username, 64), truncate(r.Role, 16))
	u, err := a.d.Auth.CreateUser(c.Request().Context(), r.Username, r.Password, auth.Role(r.Role))
	if err != nil {
		return err
	}
	return ok(c, toUserView(u))
}

func (a *API) listUsers(c echo.Context) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	list, total, err := a.d.Auth.Users(c.Request().Context(), p)
	if err != nil {
		return err
	}
	views := make([]userView, len(list))
	for i, u := range list {
		views[i] = toUserView(u)
	}
	return ok(c, newPage(p, total, views))
}

func (a *API) deleteUser(c echo.Context) error {
	id, err := idOf(c)
	if err != nil {
		return err
	}
	detail(c, "user=%s", id)
	if id == userOf(c).ID {
		return invalid.Field("id", "you cannot delete yourself")
	}
	if err := a.d.Auth.DeleteUser(c.Request().Context(), id); err != nil {
		return err
	}
	return ok(c, nil)
}

// retryAfter sets Retry-After to wait in whole seconds and returns them.
func retryAfter(c echo.Context, wait time.Duration) int {
	secs := int(wait.Seconds() + 0.999)
	c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	return secs
}
