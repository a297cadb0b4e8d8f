// Package pipelinev1 holds the Go code generated from plantlake/pipeline/v1/pipeline.proto
// (package plantlake.pipeline.v1): message types and the gRPC client and server
// of PipelineService, the control API of every pipeline stage.
// Regenerate with proto/generate.sh; only this file is hand-written.
package pipelinev1
