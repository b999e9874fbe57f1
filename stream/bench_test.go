package stream

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"
)

// 720p30-sized synthetic frames: one 60 kB key frame per second, 8 kB deltas.
const (
	benchKeySize   = 60_000
	benchDeltaSize = 8_000
)

// BenchmarkLatency measures the time from Publish to the frame being
// returned by ReadFrame over QUIC on loopback: the latency the hub, QUIC
// and the client add (no encoder, no network).
//
//   - lockstep publishes the next frame once the previous one arrived: pure
//     per-frame latency.
//   - paced-30fps publishes on a 30 Hz ticker like a camera: includes the
//     effect of idle gaps on pacing and acknowledgements. One op is one
//     frame period; use -benchtime=300x for a stable p99.
func BenchmarkLatency(b *testing.B) {
	b.Run("lockstep", func(b *testing.B) {
		env := newTestEnv(b, HubConfig{})
		env.hub.SetTrack(testTrack)
		c := env.client()
		latencies := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			au := syntheticAU(i, benchKeySize, benchDeltaSize)
			published := time.Now()
			env.hub.Publish(au)
			f := readFrame(b, c)
			latencies = append(latencies, f.Received.Sub(published))
		}
		reportPercentiles(b, latencies)
	})
	b.Run("paced-30fps", func(b *testing.B) {
		env := newTestEnv(b, HubConfig{})
		env.hub.SetTrack(testTrack)
		c := env.client()
		published := make([]time.Time, b.N)
		go func() {
			ticker := time.NewTicker(time.Second / 30)
			defer ticker.Stop()
			for i := range b.N {
				published[i] = time.Now()
				env.hub.Publish(syntheticAU(i, benchKeySize, benchDeltaSize))
				<-ticker.C
			}
		}()
		latencies := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			f := readFrame(b, c)
			// The payload starts with the frame index; published[i] was
			// written before Publish, which happens before the read.
			latencies = append(latencies, f.Received.Sub(published[frameIndex(f.Data)]))
		}
		reportPercentiles(b, latencies)
		b.ReportMetric(0, "ns/op") // one frame period by construction
	})
}

func reportPercentiles(b *testing.B, latencies []time.Duration) {
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	at := func(q float64) float64 {
		return float64(latencies[int(q*float64(len(latencies)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkFanout publishes 720p30-sized frames to 1, 10 and 50 viewers in
// lock step (each frame is delivered to every viewer before the next one)
// and reports the delivered throughput and the CPU time per viewer per
// second of video. Viewers run in the same process, so the CPU figure
// includes the receiving side too: it is an upper bound for the camera.
func BenchmarkFanout(b *testing.B) {
	for _, viewers := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("viewers=%d", viewers), func(b *testing.B) {
			env := newTestEnv(b, HubConfig{})
			env.hub.SetTrack(testTrack)
			clients := make([]*Client, viewers)
			for i := range clients {
				clients[i] = env.client()
			}
			var bytes int64
			b.ReportAllocs()
			cpuBefore := cpuTime(b)
			start := time.Now()
			b.ResetTimer()
			for i := range b.N {
				env.hub.Publish(syntheticAU(i, benchKeySize, benchDeltaSize))
				for _, c := range clients {
					bytes += int64(len(readFrame(b, c).Data))
				}
			}
			b.StopTimer()
			wall := time.Since(start).Seconds()
			cpu := (cpuTime(b) - cpuBefore).Seconds()
			videoSeconds := float64(b.N) / 30
			b.ReportMetric(float64(bytes)/1e6/wall, "MB/s")
			b.ReportMetric(cpu/float64(viewers)/videoSeconds, "cpu-s/viewer/video-s")
			if st := env.hub.Stats(); st.GroupsReset > 0 {
				b.Logf("%d groups reset during lock step", st.GroupsReset)
			}
		})
	}
}

// cpuTime is the user plus system CPU time of this process.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
