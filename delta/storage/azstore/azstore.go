// Package azstore is a storage.Store on Azure Blob Storage and ADLS Gen2,
// addressed as abfss://container@account.dfs.core.windows.net/prefix or
// az://container/prefix (the account from AZURE_STORAGE_ACCOUNT_NAME).
//
// The store speaks the Blob API, which ADLS Gen2 accounts (hierarchical
// namespace on) serve beside the Data Lake API: an abfss:// URI is mapped to
// the account's blob endpoint. Commits rely on conditional writes:
// PutIfAbsent uploads with If-None-Match: *, which the service refuses with
// 409 BlobAlreadyExists (or 412 ConditionNotMet) when the blob exists; that
// is storage.ErrExists.
//
// Credentials, first found wins: a SAS token (AZURE_STORAGE_SAS_TOKEN), an
// account key (AZURE_STORAGE_ACCOUNT_KEY), else azidentity's default chain
// (environment service principal, workload identity, managed identity,
// Azure CLI). The blob endpoint can be overridden (AZURE_STORAGE_ENDPOINT or
// ?endpoint=, e.g. http://127.0.0.1:10000/devstoreaccount1 for Azurite).
package azstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/plantlake/plantlake/delta/storage"
)

// Defaults for large uploads.
const (
	// DefaultBlockThreshold is the size above which WriteFile stages blocks
	// in parallel and commits the block list, instead of one Put Blob.
	DefaultBlockThreshold = 16 << 20
	// blockSize is the size of each staged block.
	blockSize = 8 << 20
	// blockConcurrency bounds the blocks staged at once.
	blockConcurrency = 4
)

// Config says which container and how to reach it.
type Config struct {
	// Account is the storage account's name.
	Account string
	// Container is the container (ADLS: file system) name.
	Container string
	// Prefix is the store's root inside the container.
	Prefix string
	// Endpoint is the blob service URL; empty means
	// https://<account>.blob.core.windows.net. For Azurite it is
	// http://127.0.0.1:10000/devstoreaccount1.
	Endpoint string
	// AccountKey authenticates with the account's shared key when set.
	AccountKey string
	// SAS is a shared access signature (the query string, with or without
	// "?") used when set.
	SAS string
	// BlockThreshold is the size above which WriteFile uploads in blocks;
	// 0 means DefaultBlockThreshold.
	BlockThreshold int64
	// PutIfAbsentAttempts bounds the tries of one PutIfAbsent on transient
	// errors (5xx, network); default 6.
	PutIfAbsentAttempts int
	// WholeReadLimit is the size up to which Open downloads the whole blob
	// at once and serves ReadAt from memory, instead of one ranged download
	// per ReadAt; 0 means DefaultWholeReadLimit, negative turns it off.
	WholeReadLimit int64
}

// DefaultWholeReadLimit is the default Config.WholeReadLimit: a Parquet
// reader makes several small reads of a file (footer, then column chunks),
// and below this size one download costs less than their round trips.
const DefaultWholeReadLimit = 8 << 20

// Store is a storage.Store on one container, rooted at a prefix. It is safe
// for concurrent use.
type Store struct {
	client *container.Client
	// once is a client whose requests are not retried by the SDK, for
	// PutIfAbsent's own retry loop.
	once      *container.Client
	account   string
	name      string
	prefix    string
	threshold int64
	attempts  int
	wholeRead int64
}

var (
	_ storage.Store      = (*Store)(nil)
	_ storage.NameLister = (*Store)(nil)
)

// ParseURI reads an abfss://, abfs://, az:// or azure:// URI into a Config,
// filling credentials and endpoint from the environment:
//
//	abfss://container@account.dfs.core.windows.net/prefix
//	abfss://container@account.blob.core.windows.net/prefix
//	az://container/prefix   (account from AZURE_STORAGE_ACCOUNT_NAME)
//
// A query may set endpoint=URL (the blob service) and account=NAME.
func ParseURI(uri string) (Config, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return Config{}, fmt.Errorf("azstore: parse %q: %w", uri, err)
	}
	cfg := Config{
		Account:    os.Getenv("AZURE_STORAGE_ACCOUNT_NAME"),
		Endpoint:   os.Getenv("AZURE_STORAGE_ENDPOINT"),
		AccountKey: os.Getenv("AZURE_STORAGE_ACCOUNT_KEY"),
		SAS:        os.Getenv("AZURE_STORAGE_SAS_TOKEN"),
		Prefix:     strings.Trim(u.Path, "/"),
	}
	switch u.Scheme {
	case "abfss", "abfs":
		if u.User == nil || u.User.Username() == "" {
			return Config{}, fmt.Errorf("azstore: %q: want %s://container@account.dfs.core.windows.net/path", uri, u.Scheme)
		}
		cfg.Container = u.User.Username()
		if u.Hostname() == "" {
			return Config{}, fmt.Errorf("azstore: %q: no account", uri)
		}
		cfg.Account, _, _ = strings.Cut(u.Hostname(), ".")
	case "az", "azure":
		cfg.Container = u.Host
	default:
		return Config{}, fmt.Errorf("azstore: %q: scheme %q is not abfss, abfs, az or azure", uri, u.Scheme)
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "endpoint":
			cfg.Endpoint = q.Get(k)
		case "account":
			cfg.Account = q.Get(k)
		default:
			return Config{}, fmt.Errorf("azstore: %q: unknown setting %q (want endpoint, account)", uri, k)
		}
	}
	if cfg.Container == "" {
		return Config{}, fmt.Errorf("azstore: %q: no container", uri)
	}
	if cfg.Account == "" && cfg.Endpoint == "" {
		return Config{}, fmt.Errorf("azstore: %q: no account (set AZURE_STORAGE_ACCOUNT_NAME or use abfss://container@account...)", uri)
	}
	return cfg, nil
}

// Open opens the store named by an Azure URI (see ParseURI).
func Open(uri string) (*Store, error) {
	cfg, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	return New(cfg)
}

// New returns a Store for cfg. It does not contact the service.
func New(cfg Config) (*Store, error) {
	if cfg.Container == "" {
		return nil, errors.New("azstore: no container")
	}
	prefix, err := storage.CleanPath(strings.Trim(cfg.Prefix, "/"))
	if err != nil {
		return nil, fmt.Errorf("azstore: prefix %q: %w", cfg.Prefix, err)
	}
	endpoint := strings.TrimSuffix(cfg.Endpoint, "/")
	if endpoint == "" {
		if cfg.Account == "" {
			return nil, errors.New("azstore: no account and no endpoint")
		}
		endpoint = "https://" + cfg.Account + ".blob.core.windows.net"
	}
	if cfg.Account == "" {
		cfg.Account = accountFromEndpoint(endpoint)
	}
	containerURL := endpoint + "/" + url.PathEscape(cfg.Container)
	s := &Store{account: cfg.Account, name: cfg.Container, prefix: prefix,
		threshold: cfg.BlockThreshold, attempts: cfg.PutIfAbsentAttempts, wholeRead: cfg.WholeReadLimit}
	if s.wholeRead == 0 {
		s.wholeRead = DefaultWholeReadLimit
	}
	if s.threshold <= 0 {
		s.threshold = DefaultBlockThreshold
	}
	if s.attempts <= 0 {
		s.attempts = 6
	}
	for _, c := range []struct {
		dst     **container.Client
		retries int32
	}{{&s.client, 0}, {&s.once, -1}} {
		opts := &container.ClientOptions{}
		if c.retries != 0 {
			opts.Retry = policy.RetryOptions{MaxRetries: c.retries}
		}
		client, err := newClient(cfg, containerURL, opts)
		if err != nil {
			return nil, err
		}
		*c.dst = client
	}
	return s, nil
}

// newClient picks the credential: SAS, account key, or azidentity's chain.
func newClient(cfg Config, containerURL string, opts *container.ClientOptions) (*container.Client, error) {
	switch {
	case cfg.SAS != "":
		return container.NewClientWithNoCredential(containerURL+"?"+strings.TrimPrefix(cfg.SAS, "?"), opts)
	case cfg.AccountKey != "":
		cred, err := container.NewSharedKeyCredential(cfg.Account, cfg.AccountKey)
		if err != nil {
			return nil, fmt.Errorf("azstore: account key: %w", err)
		}
		return container.NewClientWithSharedKeyCredential(containerURL, cred, opts)
	default:
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("azstore: default Azure credential: %w", err)
		}
		return container.NewClient(containerURL, cred, opts)
	}
}

// accountFromEndpoint takes the account from a blob endpoint: the first
// label of the host, or the first path element on an emulator
// (http://127.0.0.1:10000/devstoreaccount1).
func accountFromEndpoint(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		first, _, _ := strings.Cut(p, "/")
		return first
	}
	first, _, _ := strings.Cut(u.Hostname(), ".")
	return first
}

// URI returns abfss://container@account.dfs.core.windows.net/prefix.
func (s *Store) URI() string {
	return "abfss://" + s.name + "@" + s.account + ".dfs.core.windows.net/" + s.prefix
}

// CreateContainer creates the store's container if it does not exist, for
// tests and first-time setup.
func (s *Store) CreateContainer(ctx context.Context) error {
	_, err := s.client.Create(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return fmt.Errorf("azstore: create container %s: %w", s.name, err)
	}
	return nil
}

func (s *Store) key(p string) (string, error) {
	p, err := storage.CleanPath(p)
	if err != nil {
		return "", err
	}
	return storage.Join(s.prefix, p), nil
}

// fileKey is key for a path that must name a file, not the root.
func (s *Store) fileKey(op, p string) (string, error) {
	k, err := s.key(p)
	if err != nil {
		return "", err
	}
	if k == "" || p == "" {
		return "", fmt.Errorf("azstore: %s the root: %w", op, storage.ErrInvalidPath)
	}
	return k, nil
}

func notFound(err error) bool {
	var re *azcore.ResponseError
	return bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound, bloberror.ResourceNotFound) ||
		errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

func wrap(op, p string, err error) error {
	if notFound(err) {
		return fmt.Errorf("azstore: %s %s: %w", op, p, storage.ErrNotExist)
	}
	return fmt.Errorf("azstore: %s %s: %w", op, p, err)
}

// ReadFile implements storage.Store.
func (s *Store) ReadFile(ctx context.Context, p string) ([]byte, error) {
	k, err := s.fileKey("read", p)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.NewBlobClient(k).DownloadStream(ctx, nil)
	if err != nil {
		return nil, wrap("read", p, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, wrap("read", p, err)
	}
	return b, nil
}

// blobFile is an open blob: each ReadAt is one ranged download, pinned to
// the ETag seen at Open.
type blobFile struct {
	client *blob.Client
	ctx    context.Context
	path   string
	size   int64
	etag   *azcore.ETag
}

func (f *blobFile) Size() int64  { return f.size }
func (f *blobFile) Close() error { return nil }

// ReadAt implements io.ReaderAt.
func (f *blobFile) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("azstore: read %s: negative offset %d", f.path, off)
	}
	if len(b) == 0 {
		return 0, nil
	}
	if off >= f.size {
		return 0, io.EOF
	}
	n := min(int64(len(b)), f.size-off)
	resp, err := f.client.DownloadStream(f.ctx, &blob.DownloadStreamOptions{
		Range:            blob.HTTPRange{Offset: off, Count: n},
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: f.etag}},
	})
	if err != nil {
		return 0, wrap("read range of", f.path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadFull(resp.Body, b[:n])
	if err != nil {
		return got, wrap("read range of", f.path, err)
	}
	if got < len(b) {
		return got, io.EOF
	}
	return got, nil
}

// Open implements storage.Store.
func (s *Store) Open(ctx context.Context, p string) (storage.File, error) {
	k, err := s.fileKey("open", p)
	if err != nil {
		return nil, err
	}
	c := s.client.NewBlobClient(k)
	props, err := c.GetProperties(ctx, nil)
	if err != nil {
		return nil, wrap("open", p, err)
	}
	if isFolder(props.Metadata) {
		return nil, fmt.Errorf("azstore: open %s: is a directory", p)
	}
	size := deref(props.ContentLength)
	if size <= s.wholeRead {
		resp, err := c.DownloadStream(ctx, &blob.DownloadStreamOptions{
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: props.ETag}},
		})
		if err != nil {
			return nil, wrap("open", p, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, wrap("open", p, err)
		}
		return storage.BytesFile(b), nil
	}
	return &blobFile{client: c, ctx: context.WithoutCancel(ctx), path: p, size: size, etag: props.ETag}, nil
}

// WriteFile implements storage.Store: one Put Blob, or above the threshold
// blocks staged in parallel and one Put Block List, which makes the new
// content visible at once.
func (s *Store) WriteFile(ctx context.Context, p string, data []byte) error {
	k, err := s.fileKey("write", p)
	if err != nil {
		return err
	}
	bc := s.client.NewBlockBlobClient(k)
	if int64(len(data)) <= s.threshold {
		_, err = bc.Upload(ctx, streaming.NopCloser(bytes.NewReader(data)), nil)
	} else {
		err = s.uploadBlocks(ctx, bc, data)
	}
	if err != nil {
		return wrap("write", p, err)
	}
	return nil
}

// uploadBlocks stages data in blockSize blocks, blockConcurrency at a time,
// and commits them.
func (s *Store) uploadBlocks(ctx context.Context, bc *blockblob.Client, data []byte) error {
	n := (len(data) + blockSize - 1) / blockSize
	ids := make([]string, n)
	var nonce [8]byte
	binary.BigEndian.PutUint64(nonce[:], uint64(time.Now().UnixNano()))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, blockConcurrency)
	for i := range n {
		var id [16]byte
		copy(id[:8], nonce[:])
		binary.BigEndian.PutUint64(id[8:], uint64(i))
		ids[i] = base64.StdEncoding.EncodeToString(id[:])
		chunk := data[i*blockSize : min((i+1)*blockSize, len(data))]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := bc.StageBlock(ctx, ids[i], streaming.NopCloser(bytes.NewReader(chunk)), nil)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("stage block %d: %w", i, err)
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if _, err := bc.CommitBlockList(ctx, ids, nil); err != nil {
		return fmt.Errorf("commit block list: %w", err)
	}
	return nil
}

// PutIfAbsent implements storage.Store with Put Blob If-None-Match: *.
//
// The SDK's retries are off for this call so that this loop knows whether
// an earlier attempt may have landed (network error or 5xx); if so, a later
// "already exists" whose content is byte-identical to data is our own
// write, and counts as success.
func (s *Store) PutIfAbsent(ctx context.Context, p string, data []byte) error {
	k, err := s.fileKey("put", p)
	if err != nil {
		return err
	}
	bc := s.once.NewBlockBlobClient(k)
	opts := &blockblob.UploadOptions{AccessConditions: &blob.AccessConditions{
		ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)},
	}}
	ambiguous := false
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		_, err := bc.Upload(ctx, streaming.NopCloser(bytes.NewReader(data)), opts)
		if err == nil {
			return nil
		}
		if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
			if ambiguous && s.sameContent(ctx, k, data) {
				return nil
			}
			return fmt.Errorf("azstore: put %s: %w", p, storage.ErrExists)
		}
		var re *azcore.ResponseError
		status := 0
		if errors.As(err, &re) {
			status = re.StatusCode
		}
		retryable := status >= 500 || status == http.StatusConflict || status == 0 && ctx.Err() == nil
		if !retryable || attempt >= s.attempts {
			return fmt.Errorf("azstore: put %s (attempt %d): %w", p, attempt, err)
		}
		if status != http.StatusConflict {
			ambiguous = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("azstore: put %s: %w", p, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (s *Store) sameContent(ctx context.Context, key string, data []byte) bool {
	resp, err := s.client.NewBlobClient(key).DownloadStream(ctx, nil)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return err == nil && bytes.Equal(b, data)
}

// isFolder reports whether blob metadata marks a directory of a
// hierarchical-namespace account (as seen through the Blob API).
func isFolder(md map[string]*string) bool {
	for k, v := range md {
		if strings.EqualFold(k, "hdi_isfolder") && v != nil && strings.EqualFold(*v, "true") {
			return true
		}
	}
	return false
}

// List implements storage.Store. Blob prefixes are directories, as are the
// folder blobs of a hierarchical-namespace account. A dir with nothing
// under it is storage.ErrNotExist, except the root.
func (s *Store) List(ctx context.Context, dir string) ([]storage.FileInfo, error) {
	k, err := s.key(dir)
	if err != nil {
		return nil, err
	}
	pre := ""
	if k != "" {
		pre = k + "/"
	}
	seen := map[string]bool{}
	var out []storage.FileInfo
	add := func(fi storage.FileInfo) {
		if !seen[fi.Path] {
			seen[fi.Path] = true
			out = append(out, fi)
		}
	}
	pager := s.client.NewListBlobsHierarchyPager("/", &container.ListBlobsHierarchyOptions{
		Prefix: &pre, Include: container.ListBlobsInclude{Metadata: true},
	})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, wrap("list", dir, err)
		}
		for _, bp := range page.Segment.BlobPrefixes {
			name := strings.TrimSuffix(strings.TrimPrefix(deref(bp.Name), pre), "/")
			if name != "" {
				add(storage.FileInfo{Path: storage.Join(dir, name), IsDir: true})
			}
		}
		for _, b := range page.Segment.BlobItems {
			name := strings.TrimPrefix(deref(b.Name), pre)
			if name == "" || strings.Contains(name, "/") {
				continue
			}
			if isFolder(b.Metadata) {
				add(storage.FileInfo{Path: storage.Join(dir, name), IsDir: true})
				continue
			}
			fi := storage.FileInfo{Path: storage.Join(dir, name)}
			if b.Properties != nil {
				fi.Size = deref(b.Properties.ContentLength)
				fi.ModTime = deref(b.Properties.LastModified)
			}
			add(fi)
		}
	}
	if len(out) == 0 && dir != "" {
		return nil, fmt.Errorf("azstore: list %s: %w", dir, storage.ErrNotExist)
	}
	slices.SortFunc(out, func(a, b storage.FileInfo) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// ListNames implements storage.NameLister.
func (s *Store) ListNames(ctx context.Context, dir string) ([]string, error) {
	infos, err := s.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	return storage.Names(infos), nil
}

// Stat implements storage.Store. A path with blobs under it is a directory.
func (s *Store) Stat(ctx context.Context, p string) (storage.FileInfo, error) {
	k, err := s.key(p)
	if err != nil {
		return storage.FileInfo{}, err
	}
	if p == "" {
		return storage.FileInfo{Path: p, IsDir: true}, nil
	}
	props, err := s.client.NewBlobClient(k).GetProperties(ctx, nil)
	if err == nil {
		if isFolder(props.Metadata) {
			return storage.FileInfo{Path: p, IsDir: true}, nil
		}
		return storage.FileInfo{Path: p, Size: deref(props.ContentLength), ModTime: deref(props.LastModified)}, nil
	}
	if !notFound(err) {
		return storage.FileInfo{}, wrap("stat", p, err)
	}
	pre := k + "/"
	pager := s.client.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &pre, MaxResults: to.Ptr[int32](1)})
	page, err := pager.NextPage(ctx)
	if err != nil {
		return storage.FileInfo{}, wrap("stat", p, err)
	}
	if len(page.Segment.BlobItems) == 0 {
		return storage.FileInfo{}, fmt.Errorf("azstore: stat %s: %w", p, storage.ErrNotExist)
	}
	return storage.FileInfo{Path: p, IsDir: true}, nil
}

// Delete implements storage.Store; a missing blob is storage.ErrNotExist.
func (s *Store) Delete(ctx context.Context, p string) error {
	k, err := s.fileKey("delete", p)
	if err != nil {
		return err
	}
	if _, err := s.client.NewBlobClient(k).Delete(ctx, nil); err != nil {
		return wrap("delete", p, err)
	}
	return nil
}

// deref returns *p, or the zero value for nil.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
