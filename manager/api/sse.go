package api

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
)

// eventStream writes a text/event-stream answer: the headers once, then
// one event per send, each its JSON on one data line.
type eventStream struct {
	w *echo.Response
}

// startEvents answers c with the headers of an event stream that no
// proxy buffers or caches.
func startEvents(c echo.Context) eventStream {
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return eventStream{w: w}
}

// write writes one event without flushing, for callers that send a burst.
func (s eventStream) write(event string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", event, b)
	return err
}

// send writes one event and flushes it to the client.
func (s eventStream) send(event string, v any) error {
	if err := s.write(event, v); err != nil {
		return err
	}
	s.flush()
	return nil
}

func (s eventStream) flush() { s.w.Flush() }
