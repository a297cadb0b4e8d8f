package devstack_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/plantlake/plantlake/devstack"
)

// motoAuth is an Authorization header that moto takes as an authenticated
// caller (moto checks no signatures, but refuses anonymous access to
// private objects, as S3 does).
const motoAuth = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"

// put sends an HTTP PUT with body and the given headers and returns the
// status code.
func put(t *testing.T, url, body string, header map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", motoAuth)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestMotoHonoursIfNoneMatch proves that the S3 server the cloud storage
// tests run against implements conditional writes: a PutObject with
// If-None-Match: * on a key that exists must be refused with 412, and the
// object must keep its first content. A server that ignored the header
// (answering 200) would make the S3 store's commits unsafe, and fails here.
func TestMotoHonoursIfNoneMatch(t *testing.T) {
	s := devstack.Moto(t)
	bucket := s.Endpoint() + "/conditional"
	if code := put(t, bucket, "", nil); code != http.StatusOK {
		t.Fatalf("CreateBucket: HTTP %d", code)
	}
	key := bucket + "/_delta_log/00000000000000000000.json"
	if code := put(t, key, "first", map[string]string{"If-None-Match": "*"}); code != http.StatusOK {
		t.Fatalf("first conditional put: HTTP %d, want 200", code)
	}
	if code := put(t, key, "second", map[string]string{"If-None-Match": "*"}); code != http.StatusPreconditionFailed {
		t.Fatalf("second conditional put: HTTP %d, want 412 Precondition Failed", code)
	}
	req, err := http.NewRequest(http.MethodGet, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", motoAuth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "first" {
		t.Errorf("object holds %q after the refused put, want %q", b, "first")
	}
}

// TestAzuriteStarts checks that Azurite installs, starts and answers on
// its Blob endpoint (the Azure store's tests exercise it in depth).
func TestAzuriteStarts(t *testing.T) {
	s := devstack.Azurite(t)
	resp, err := http.Get(s.Endpoint() + "/" + devstack.AzuriteAccount + "?comp=list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Unsigned, the request is refused; what matters is that Azurite (and
	// not something else on the port) answered as the Blob service does.
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("x-ms-request-id") == "" {
		t.Errorf("GET list containers: HTTP %d, headers %v; want 403 from the Blob service", resp.StatusCode, resp.Header)
	}
}
