package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// maxErrorBody bounds the error body read from a registry.
const maxErrorBody = 64 << 10

// statusClass is the errdefs class of an HTTP error status:
//
//	401, 403      FailedPrecondition: the credentials are missing, wrong
//	              or not allowed; retrying will not help until they change
//	404           NotFound
//	408, 429, 5xx Unavailable: retry later
//	other 4xx     InvalidArgument: the registry refuses the request itself
//	anything else Unknown
func statusClass(code int) error {
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return errdefs.ErrFailedPrecondition
	case code == http.StatusNotFound:
		return errdefs.ErrNotFound
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return errdefs.ErrUnavailable
	case code >= 400:
		return errdefs.ErrInvalidArgument
	}
	return errdefs.ErrUnknown
}

// responseError reads the error of resp (the distribution error body, if
// any), closes the body and returns an error of the status's class.
func responseError(resp *http.Response) error {
	defer resp.Body.Close()
	er := &errcode.ErrorResponse{Method: resp.Request.Method, URL: resp.Request.URL, StatusCode: resp.StatusCode}
	if resp.Request.Method != http.MethodHead {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		var parsed struct {
			Errors errcode.Errors `json:"errors"`
		}
		if json.Unmarshal(body, &parsed) == nil {
			er.Errors = parsed.Errors
		}
	}
	return fmt.Errorf("%w: %w", er, statusClass(resp.StatusCode))
}

// transportError classifies an error of the HTTP client, the auth client
// included: a failed token request keeps the class of its status, missing
// basic credentials are FailedPrecondition, a cancelled ctx stays as it
// is, anything else (dial, TLS, reset) is Unavailable.
func transportError(err error) error {
	var er *errcode.ErrorResponse
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.As(err, &er):
		return fmt.Errorf("%w: %w", err, statusClass(er.StatusCode))
	case errors.Is(err, auth.ErrBasicCredentialNotFound):
		return fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecondition)
	}
	return fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
}

// hostErrors collects the failures of the endpoints tried for one
// operation and makes one error naming each of them.
type hostErrors struct {
	errs []error
}

func (h *hostErrors) add(ep Endpoint, err error) {
	h.errs = append(h.errs, fmt.Errorf("%s: %w", ep, err))
}

// err is the combined error: it names every endpoint tried and has the
// class of the last failure that is not NotFound (an endpoint that knows
// nothing of the object says less than one that refused or failed), else
// NotFound.
func (h *hostErrors) err(what string) error {
	if len(h.errs) == 0 {
		return fmt.Errorf("%s: no endpoint to try: %w", what, errdefs.ErrFailedPrecondition)
	}
	main := h.errs[len(h.errs)-1]
	for _, e := range h.errs {
		if !errdefs.IsNotFound(e) {
			main = e
		}
	}
	if len(h.errs) == 1 {
		return fmt.Errorf("%s: %w", what, main)
	}
	msg := ""
	for _, e := range h.errs {
		if e != main {
			msg += e.Error() + "; "
		}
	}
	return fmt.Errorf("%s: %s%w", what, msg, main)
}
