package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/manager/paging"
)

// envelope is the body of every console response.
type envelope struct {
	Code    int    `json:"code"`
	Msg     string `json:"msg"`
	Message string `json:"message"`
	Data    any    `json:"data"`
}

func ok(c echo.Context, data any) error {
	return c.JSON(http.StatusOK, envelope{Code: 0, Msg: "SUCCESS", Message: "success", Data: data})
}

// pageView is the data of every paged list.
type pageView[T any] struct {
	Total    int `json:"total"`
	PageNum  int `json:"pageNum"`
	PageSize int `json:"pageSize"`
	Pages    int `json:"pages"`
	List     []T `json:"list"`
}

func newPage[T any](p paging.Page, total int, list []T) pageView[T] {
	if list == nil {
		list = []T{}
	}
	return pageView[T]{Total: total, PageNum: p.Num, PageSize: p.Size, Pages: p.Pages(total), List: list}
}

// timeLayout is the console's time format.
const timeLayout = "2006-01-02 15:04:05"

// apiTime is a time in the console's format; the zero time is null.
type apiTime time.Time

func (t apiTime) MarshalJSON() ([]byte, error) { return t.appendJSON(nil), nil }
