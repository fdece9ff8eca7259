module github.com/operon/operon/sdk/go

go 1.24
