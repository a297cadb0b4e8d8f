package server

import (
	"context"
	"fmt"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	"github.com/plantlake/plantlake/servicekit/identity"
)

// MethodScopes are the scopes the catalog's methods need; the service
// kit's interceptor checks them before a handler runs. Commit needs a
// commit grant, and its handler checks the grant against the table and
// the txn app ids (authorizeCommit). CreateTable needs admin or a commit
// grant for the new table (authorizeCreate): every writer creates its
// target tables when they are missing. A method added later without an
// entry here needs admin.
var MethodScopes = map[string]identity.Scope{
	catalogv1.CatalogService_GetTable_FullMethodName:              identity.Read,
	catalogv1.CatalogService_ListTables_FullMethodName:            identity.Read,
	catalogv1.CatalogService_GetSnapshot_FullMethodName:           identity.Read,
	catalogv1.CatalogService_GetTransactionVersion_FullMethodName: identity.Read,
	catalogv1.CatalogService_GetChanges_FullMethodName:            identity.Read,
	catalogv1.CatalogService_History_FullMethodName:               identity.Read,
	catalogv1.CatalogService_Scan_FullMethodName:                  identity.Read,
	catalogv1.CatalogService_Commit_FullMethodName:                identity.Commit,
	catalogv1.CatalogService_Checkpoint_FullMethodName:            identity.Maintain,
	catalogv1.CatalogService_Vacuum_FullMethodName:                identity.Maintain,
	catalogv1.CatalogService_Optimize_FullMethodName:              identity.Maintain,
	catalogv1.CatalogService_CreateTable_FullMethodName:           identity.Commit,
}

// authorizeCommit checks that the caller may commit to the request's table
// and write each of its txns: one of its commit grants must match the table
// and every app id. The refusal wraps identity.ErrPermissionDenied, which
// the kit answers with PermissionDenied and logs with the identity.
func authorizeCommit(ctx context.Context, req *catalogv1.CommitRequest) error {
	id := identity.FromContext(ctx)
	if id == nil {
		return fmt.Errorf("commit to %q: %w: the call has no identity", req.GetTable(), identity.ErrPermissionDenied)
	}
	appIDs := make([]string, len(req.GetTxns()))
	for i, x := range req.GetTxns() {
		appIDs[i] = x.GetAppId()
	}
	return id.MayCommit(req.GetTable(), appIDs)
}

// authorizeCreate checks that the caller may create the table: an admin,
// or an identity with a commit grant for its name.
func authorizeCreate(ctx context.Context, name string) error {
	id := identity.FromContext(ctx)
	if id == nil {
		return fmt.Errorf("create %q: %w: the call has no identity", name, identity.ErrPermissionDenied)
	}
	if err := id.MayCommit(name, nil); err != nil {
		return fmt.Errorf("create table %q needs admin or a commit grant for it: %w", name, err)
	}
	return nil
}
