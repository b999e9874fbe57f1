//go:build linux

package board

import (
	"fmt"
	"io"
	"time"

	"github.com/warthog618/go-gpiocdev"
)

// consumer labels our lines in `gpioinfo`.
const consumer = "camagent"

// RequestInput requests offset on chip (e.g. "gpiochip0") as an input with
// edge events on both edges, debounced by the kernel, and calls edge for
// each from gpiocdev's event goroutine.
func RequestInput(chip string, offset int, debounce time.Duration, edge func(rising bool)) (io.Closer, error) {
	opts := []gpiocdev.LineReqOption{
		gpiocdev.AsInput, gpiocdev.WithBothEdges, gpiocdev.WithConsumer(consumer),
		gpiocdev.WithEventHandler(func(e gpiocdev.LineEvent) {
			edge(e.Type == gpiocdev.LineEventRisingEdge)
		}),
	}
	if debounce > 0 {
		opts = append(opts, gpiocdev.WithDebounce(debounce))
	}
	l, err := gpiocdev.RequestLine(chip, offset, opts...)
	if err != nil {
		return nil, fmt.Errorf("gpio %s line %d (input): %w", chip, offset, err)
	}
	return l, nil
}

// RequestOutput requests offset on chip as an output at initial.
func RequestOutput(chip string, offset, initial int) (OutputLine, error) {
	l, err := gpiocdev.RequestLine(chip, offset, gpiocdev.AsOutput(initial), gpiocdev.WithConsumer(consumer))
	if err != nil {
		return nil, fmt.Errorf("gpio %s line %d (output): %w", chip, offset, err)
	}
	return l, nil
}
