// Package cloudtest holds the tests that run the Delta library on the cloud
// stores (s3store on moto, azstore on Azurite, both started by devstack):
// writers racing on one table, checkpoints, log cleanup and vacuum, and
// delta-rs reading what the library wrote through the stores' URIs. It has
// no code of its own.
package cloudtest
