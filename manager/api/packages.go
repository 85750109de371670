package api

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/pkg"
)

// Upload limits beyond the package's own size cap.
const (
	// multipartSlack is what the multipart framing around the file may add.
	multipartSlack = 1 << 20
	// maxSkippedParts bounds the form fields sent before the file.
	maxSkippedParts = 16
	// minUploadRate is the slowest upload we wait for: the read deadline
	// of an upload is 5 minutes plus the package cap at this rate.
	minUploadRate = 1 << 20 // bytes per second
)

// packageView has the seed's package fields plus what we know of the file.
type packageView struct {
	ID         ids.ID  `json:"id"`
	CreateTime apiTime `json:"createTime"`
	UpdateTime apiTime `json:"updateTime"`
	Name       string  `json:"name"`
	Version    string  `json:"version"`
	FilePath   string  `json:"filePath"`
	// FileSize is the size in bytes, as a decimal string (the seed's type).
	FileSize string `json:"fileSize"`
	MqType   int    `json:"mqType"`
	// CPU is "x86", "arm" or "all".
	CPU string `json:"cpu"`
	// Effective is 1 while the package is enabled, 0 when disabled.
	Effective  int      `json:"effective"`
	FileName   string   `json:"fileName"`
	SHA256     string   `json:"sha256"`
	Components []string `json:"components"`
}

func toPackageView(p pkg.Package) packageView {
	eff := 0
	if p.Effective {
		eff = 1
	}
	return packageView{
		ID: p.ID, CreateTime: apiTime(p.CreatedAt), UpdateTime: apiTime(p.UpdatedAt),
		Name: p.Name, Version: p.Version, FilePath: p.FilePath, FileSize: strconv.FormatInt(p.Size, 10),
		MqType: p.MqType, CPU: p.Arch, Effective: eff, FileName: p.FileName, SHA256: p.SHA256,
		Components: p.Manifest.ComponentNames(),
	}
}

// packages returns the package service, or an error if none is wired.
func (a *API) packages() (*pkg.Service, error) {
	if a.d.Packages == nil {
		return nil, errors.New("api: no package service configured")
	}
	return a.d.Packages, nil
}

// uploadPackage streams the multipart field "file" into the package
// service: nothing is buffered in memory or spooled by the multipart
// package, and the body is cut off just past the package size cap.
func (a *API) uploadPackage(c echo.Context) error {
	svc, err := a.packages()
	if err != nil {
		return err
	}
	req := c.Request()
	limit := svc.MaxSize() + multipartSlack
	if req.ContentLength > limit {
		return newError(codeRequestTooLarge, "package larger than %d bytes", svc.MaxSize())
	}
	req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
	// The server's ReadTimeout suits small bodies; give an upload time to
	// arrive at minUploadRate. Servers that cannot extend it keep theirs.
	_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(5*time.Minute + time.Duration(svc.MaxSize()/minUploadRate)*time.Second))

	mr, err := req.MultipartReader()
	if err != nil {
		return newError(codePackageNeed, "send the package as multipart/form-data in the field \"file\" (%v)", err)
	}
	for skipped := 0; ; skipped++ {
		part, err := mr.NextPart()
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, io.EOF):
			return newError(codePackageNeed, "no package: send the file in the multipart field \"file\"")
		case errors.As(err, &mbe):
			return newError(codeRequestTooLarge, "package larger than %d bytes", svc.MaxSize())
		case err != nil:
			return invalid.Field("file", "malformed multipart body: %v", err)
		}
		if part.FormName() != "file" {
			if skipped >= maxSkippedParts {
				return invalid.Field("file", "more than %d form fields before the field \"file\"", maxSkippedParts)
			}
			if _, err := io.Copy(io.Discard, part); err != nil {
				if errors.As(err, &mbe) {
					return newError(codeRequestTooLarge, "package larger than %d bytes", svc.MaxSize())
				}
				return invalid.Field("file", "malformed multipart body: %v", err)
			}
			continue
		}
		name := part.FileName()
		detail(c, "package=%q", truncate(name, 128))
		p, err := svc.Upload(req.Context(), name, part)
		if errors.As(err, &mbe) {
			return newError(codeRequestTooLarge, "package larger than %d bytes", svc.MaxSize())
		}
		if err != nil {
			return err
		}
		detail(c, "package=%s sha256=%s", p.FileName, p.SHA256[:12])
		return ok(c, toPackageView(p))
	}
}

func (a *API) listPackages(c echo.Context) error {
	svc, err := a.packages()
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	list, total, err := svc.Packages(c.Request().Context(), p)
	if err != nil {
		return err
	}
	views := make([]packageView, len(list))
	for i, pk := range list {
		views[i] = toPackageView(pk)
	}
	return ok(c, newPage(p, total, views))
}

// packageStatusRequest enables or disables a package.
type packageStatusRequest struct {
	ID ids.ID `json:"id"`
	// Effective is 1 to enable the package, 0 to disable it.
	Effective *int `json:"effective"`
}

func (a *API) setPackageStatus(c echo.Context) error {
	svc, err := a.packages()
	if err != nil {
		return err
	}
	var r packageStatusRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	switch {
	case r.ID.IsZero():
		return invalid.Field("id", "is required")
	case r.Effective == nil:
		return invalid.Field("effective", "is required: 1 to enable the package, 0 to disable it")
	case *r.Effective != 0 && *r.Effective != 1:
		return invalid.Field("effective", "must be 1 (enabled) or 0 (disabled)")
	}
	detail(c, "package=%s effective=%d", r.ID, *r.Effective)
	p, err := svc.SetEffective(c.Request().Context(), r.ID, *r.Effective == 1)
	if err != nil {
		return err
	}
	detail(c, "package=%s sha256=%s effective=%d", p.FileName, p.SHA256[:12], *r.Effective)
	return ok(c, toPackageView(p))
}

func (a *API) deletePackage(c echo.Context) error {
	svc, err := a.packages()
	if err != nil {
		return err
	}
	id, err := idOf(c)
	if err != nil {
		return err
	}
	detail(c, "package=%s", id)
	p, err := svc.Delete(c.Request().Context(), id)
	if err != nil {
		return err
	}
	detail(c, "package=%s sha256=%s", p.FileName, p.SHA256[:12])
	return ok(c, nil)
}
