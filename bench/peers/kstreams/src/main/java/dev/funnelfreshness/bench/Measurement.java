package dev.funnelfreshness.bench;

import com.fasterxml.jackson.annotation.JsonProperty;

/**
 * One completed start, the fields of schemas/output/measurement.schema.json (Kafka key
 * {@code <flow>:<key>}), serialized by Jackson.
 */
record Measurement(
    @JsonProperty("flow") String flow,
    @JsonProperty("key") String key,
    @JsonProperty("start_event_id") String startEventId,
    @JsonProperty("end_event_id") String endEventId,
    @JsonProperty("started_at") long startedAt,
    @JsonProperty("completed_at") long completedAt,
    @JsonProperty("lag_ms") long lagMs,
    @JsonProperty("target_ms") long targetMs,
    @JsonProperty("on_time") boolean onTime,
    @JsonProperty("clock_skew") boolean clockSkew,
    @JsonProperty("out_of_order") boolean outOfOrder,
    @JsonProperty("start_source") Source startSource,
    @JsonProperty("end_source") Source endSource) {

  /** Where a record was read. */
  record Source(
      @JsonProperty("topic") String topic,
      @JsonProperty("partition") int partition,
      @JsonProperty("offset") long offset) {}

  static Measurement of(String flow, String key, Side start, Side end, long targetMs,
      boolean outOfOrder) {
    long lag = end.occurredAt() - start.occurredAt();
    return new Measurement(flow, key, start.eventId(), end.eventId(), start.occurredAt(),
        end.occurredAt(), lag, targetMs, lag <= targetMs, lag < 0, outOfOrder,
        start.source(), end.source());
  }

  /** One side of the join as the store keeps it until the other side comes. */
  record Side(boolean start, String eventId, long occurredAt, Source source) {}
}
