package mdsclient

import (
	"errors"

	"github.com/nosecone/nscn/internal/errdefs"
)

// The registration API, HTTP over the Unix socket:
//
//	GET    /v1/ping        204: the service is up
//	POST   /v1/pods        body: Registration (JSON); 201 with a Registered
//	                       (JSON), 400, 409
//	DELETE /v1/pods/{uuid} 204, 400, 404
//
// Every request from a peer that is neither root nor the service's own user
// is answered 403. An error's body is its message as text; the status is its
// errdefs class (StatusOf).
const (
	PathPing = "/v1/ping"
	PathPods = "/v1/pods"

	// ContentJSON is the media type of a registration and its answer.
	ContentJSON = "application/json"
)

// The HTTP statuses the registration API answers with. They are spelled
// here rather than taken from net/http, which this package does not link.
const (
	StatusCreated             = 201
	StatusNoContent           = 204
	StatusBadRequest          = 400
	StatusForbidden           = 403
	StatusNotFound            = 404
	StatusConflict            = 409
	StatusPreconditionFailed  = 412
	StatusInternalServerError = 500
	StatusNotImplemented      = 501
	StatusServiceUnavailable  = 503
)

// statuses maps the errdefs classes to HTTP statuses and back.
var statuses = []struct {
	class  error
	status int
}{
	{errdefs.ErrInvalidArgument, StatusBadRequest},
	{errdefs.ErrNotFound, StatusNotFound},
	{errdefs.ErrAlreadyExists, StatusConflict},
	{errdefs.ErrPermissionDenied, StatusForbidden},
	{errdefs.ErrFailedPrecondition, StatusPreconditionFailed},
	{errdefs.ErrNotImplemented, StatusNotImplemented},
	{errdefs.ErrUnavailable, StatusServiceUnavailable},
}

// StatusOf is the HTTP status the service answers an error of err's class
// with; 500 for an error of no class.
func StatusOf(err error) int {
	for _, s := range statuses {
		if errors.Is(err, s.class) {
			return s.status
		}
	}
	return StatusInternalServerError
}

// ClassOf is the errdefs class of an error answered with status; a status
// of no class is errdefs.ErrUnavailable (the service is not what it should
// be).
func ClassOf(status int) error {
	for _, s := range statuses {
		if s.status == status {
			return s.class
		}
	}
	return errdefs.ErrUnavailable
}
