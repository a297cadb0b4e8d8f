package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPprofOnlyWhenAsked checks that the profiles are served only when the
// service asked for them, and that /metrics is served either way.
func TestPprofOnlyWhenAsked(t *testing.T) {
	for _, pprof := range []bool{false, true} {
		srv := httptest.NewServer(NewServer(NewRegistry(), pprof).Handler)
		get := func(path string) (int, string) {
			t.Helper()
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return resp.StatusCode, string(body)
		}
		if code, body := get(Path); code != http.StatusOK || !strings.Contains(body, "go_goroutines ") {
			t.Errorf("pprof=%v: GET %s: %d %.200q", pprof, Path, code, body)
		}
		code, body := get(PprofPath + "heap?debug=1")
		switch {
		case pprof && (code != http.StatusOK || !strings.Contains(body, "heap profile")):
			t.Errorf("pprof on: GET heap: %d %.200q", code, body)
		case !pprof && code != http.StatusNotFound:
			t.Errorf("pprof off: GET heap: %d, want 404", code)
		}
		srv.Close()
	}
}
