module github.com/operon/operon/examples/go-memcached

go 1.24

require github.com/operon/operon/sdk/go v0.0.0

replace github.com/operon/operon/sdk/go => ../../sdk/go
