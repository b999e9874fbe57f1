package status

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// collector turns one Snapshot per scrape into metrics, so a scrape sees
// one consistent state and nothing is updated between scrapes.
type collector struct {
	snap func() Snapshot
}

// metric is one scalar taken from a Snapshot.
type metric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(Snapshot) float64
}

func newDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("camagent_"+name, help, labels, nil)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var scalars = []metric{
	{newDesc("healthy", "1 while capture delivers frames and the hub answers."), prometheus.GaugeValue,
		func(s Snapshot) float64 { return b2f(s.Healthy) }},
	{newDesc("frames_captured_total", "Access units captured and encoded."), prometheus.CounterValue,
		func(s Snapshot) float64 { return float64(s.FramesCaptured) }},
	{newDesc("viewers", "Viewers connected now."), prometheus.GaugeValue,
		func(s Snapshot) float64 { return float64(s.Hub.Viewers) }},
	{newDesc("viewers_total", "Viewers admitted since start."), prometheus.CounterValue,
		func(s Snapshot) float64 { return float64(s.Hub.ViewersTotal) }},
	{newDesc("hub_frames_published_total", "Access units passed to the hub."), prometheus.CounterValue,
		func(s Snapshot) float64 { return float64(s.Hub.FramesPublished) }},
	{newDesc("hub_frames_dropped_total", "Access units the hub dropped."), prometheus.CounterValue,
		func(s Snapshot) float64 { return float64(s.Hub.FramesDropped) }},
	{newDesc("hub_frames_sent_total", "Frames handed to QUIC, all viewers."), prometheus.CounterValue,
		func(s Snapshot) float64 { return float64(s.Hub.FramesSent) }},
	{newDesc("hub_bytes_sent_total", "Group stream bytes handed to QUIC."), prometheus.CounterValue,
		func(s Snapshot) float64 { return float64(s.Hub.BytesSent) }},
	{newDesc("hub_groups_started_total", "Groups of pictures (key frames) published."), prometheus.CounterValue,
		func(s Snapshot) float64 { return float64(s.Hub.GroupsStarted) }},
	{newDesc("hub_groups_reset_total", "Group streams reset as stale (a viewer fell behind)."), prometheus.CounterValue,
		func(s Snapshot) float64 { return float64(s.Hub.GroupsReset) }},
	{newDesc("hub_buffered_bytes", "Bytes buffered in the hub's current groups."), prometheus.GaugeValue,
		func(s Snapshot) float64 { return float64(s.Hub.BufferedBytes) }},
	{newDesc("viewers_relayed", "Viewer connections running through a relay now (the rest are direct)."), prometheus.GaugeValue,
		func(s Snapshot) float64 { return float64(s.ViewersRelayed) }},
	{newDesc("nat_punch_requests_total", "PUNCH_ME_NOW requests from viewers."), prometheus.CounterValue,
		func(s Snapshot) float64 { return float64(s.NAT.PunchRequests) }},
	{newDesc("nat_punches_total", "Punch packets sent toward viewers."), prometheus.CounterValue,
		func(s Snapshot) float64 { return float64(s.NAT.Punches) }},
	{newDesc("nat_refused_total", "NAT traversal requests refused by the anti-amplification rules."), prometheus.CounterValue,
		func(s Snapshot) float64 { return float64(s.NAT.Refused) }},
	{newDesc("nat_sprays_total", "Port-spraying attempts (PUNCH_MANY) acted on."), prometheus.CounterValue,
		func(s Snapshot) float64 { return float64(s.NAT.Sprays) }},
	{newDesc("nat_holes_total", "Fan-outs that found a hole through the camera's NAT."), prometheus.CounterValue,
		func(s Snapshot) float64 { return float64(s.NAT.Holes) }},
}

var (
	boardInfo   = newDesc("board_info", "The board's device-tree model.", "model")
	temperature = newDesc("temperature_celsius", "Thermal zone temperature.", "zone")
	throttled   = newDesc("throttled", "Raspberry Pi firmware throttling flags (1 = set).", "reason")
	motionTotal = newDesc("motion_events_total", "PIR motion events since start.")
	motionNow   = newDesc("motion_active", "1 while the PIR sensor sees motion (or within its hold time).")
	natMapping  = newDesc("nat_mapping", "The camera NAT's mapping behaviour as measured through its relays (1 for the current one).", "behaviour")
)

// throttleReasons are the flags always exported, 0 or 1, so alerts can
// match on them before they ever fire.
var throttleReasons = []string{"under-voltage", "frequency-capped", "throttled", "soft-temperature-limit",
	"under-voltage-since-boot", "frequency-capped-since-boot", "throttled-since-boot", "soft-temperature-limit-since-boot"}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range scalars {
		ch <- m.desc
	}
	for _, d := range []*prometheus.Desc{boardInfo, temperature, throttled, motionTotal, motionNow, natMapping} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	for _, m := range scalars {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(s))
	}
	if s.Model != "" {
		ch <- prometheus.MustNewConstMetric(boardInfo, prometheus.GaugeValue, 1, strings.ToValidUTF8(s.Model, "?"))
	}
	for _, z := range s.Zones {
		ch <- prometheus.MustNewConstMetric(temperature, prometheus.GaugeValue, z.Celsius, z.Name)
	}
	if s.Throttled != nil {
		set := map[string]bool{}
		for _, r := range s.Throttled.Reasons() {
			set[r] = true
		}
		for _, r := range throttleReasons {
			ch <- prometheus.MustNewConstMetric(throttled, prometheus.GaugeValue, b2f(set[r]), r)
		}
	}
	if s.NATMapping != "" {
		ch <- prometheus.MustNewConstMetric(natMapping, prometheus.GaugeValue, 1, s.NATMapping)
	}
	if s.MotionEvents != nil {
		ch <- prometheus.MustNewConstMetric(motionTotal, prometheus.CounterValue, float64(*s.MotionEvents))
		ch <- prometheus.MustNewConstMetric(motionNow, prometheus.GaugeValue, b2f(s.MotionActive))
	}
}
