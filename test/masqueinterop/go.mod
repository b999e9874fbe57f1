module github.com/camagent/camagent/test/masqueinterop

go 1.26.0

require (
	github.com/quic-go/masque-go v0.6.0
	github.com/quic-go/quic-go v0.64.1
	github.com/yosida95/uritemplate/v3 v3.0.2
)

require (
	github.com/dunglas/httpsfv v1.1.0 // indirect
	github.com/quic-go/qpack v0.6.0 // indirect
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/net v0.56.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/text v0.40.0 // indirect
)
