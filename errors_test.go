package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

func TestErrorIsAndCopies(t *testing.T) {
	e := ErrInvalidGrant.WithDescription("code expired")
	if !errors.Is(e, ErrInvalidGrant) || errors.Is(e, ErrInvalidClient) {
		t.Fatal("Is must match on code alone")
	}
	if ErrInvalidGrant.Description != "" {
		t.Fatal("WithDescription mutated the sentinel")
	}
	wrapped := fmt.Errorf("exchange: %w", e)
	if !errors.Is(wrapped, ErrInvalidGrant) || AsError(wrapped) != e {
		t.Fatal("wrapped *Error not found")
	}
	b, _ := json.Marshal(e)
	if string(b) != `{"error":"invalid_grant","error_description":"code expired"}` {
		t.Fatalf("JSON = %s", b)
	}
	for _, tc := range []struct {
		err    *Error
		status int
	}{
		{ErrInvalidRequest, 400}, {ErrInvalidClient, 401}, {ErrInvalidToken, 401}, {ErrInsufficientScope, 403},
		{ErrServerError, 500}, {&Error{Code: "x"}, 400}, {ErrInvalidGrant.WithStatus(409), 409},
	} {
		if got := tc.err.HTTPStatus(); got != tc.status {
			t.Errorf("%s: status %d, want %d", tc.err.Code, got, tc.status)
		}
	}
}

func TestAsErrorHidesInternals(t *testing.T) {
	internal := errors.New("pq: connection refused at 10.0.0.5")
	e := AsError(internal)
	if e.Code != "server_error" || e.Description != "" || !errors.Is(e, internal) {
		t.Fatalf("AsError(internal) = %+v", e)
	}
	b, _ := json.Marshal(e)
	if string(b) != `{"error":"server_error"}` {
		t.Fatalf("internal detail leaked: %s", b)
	}
	if AsError(nil) != nil {
		t.Fatal("AsError(nil) != nil")
	}
}
