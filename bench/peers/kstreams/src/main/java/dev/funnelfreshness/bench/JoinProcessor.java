package dev.funnelfreshness.bench;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectWriter;
import dev.funnelfreshness.bench.Flows.Route;
import dev.funnelfreshness.bench.Measurement.Side;
import dev.funnelfreshness.bench.Measurement.Source;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.processor.api.RecordMetadata;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The start/completion join over one RocksDB key-value store keyed by {@code <flow>:<key>}:
 * the side that comes first is stored; the other one emits one measurement and deletes the
 * entry. A repeated side while one is stored is ignored (the first one counts).
 *
 * <p>A measurement is forwarded with the wall clock as its timestamp (Kafka Streams would
 * otherwise stamp it with the input record's CreateTime), so its CreateTime on the output
 * topic says when it was produced: what the bench times.
 */
final class JoinProcessor implements Processor<byte[], byte[], String, byte[]> {
  static final String STORE = "pending";

  private final Map<String, List<Route>> routes;
  private final ObjectMapper json;
  private final ObjectWriter writer;
  private final Progress progress;
  private ProcessorContext<String, byte[]> context;
  private KeyValueStore<String, byte[]> store;

  /** What the main thread watches: when the first record came, how many were emitted. */
  static final class Progress {
    final AtomicLong firstRecordMs = new AtomicLong();
    final AtomicLong records = new AtomicLong();
    final AtomicLong emitted = new AtomicLong();
    final AtomicLong unreadable = new AtomicLong();
  }

  JoinProcessor(Map<String, List<Route>> routes, ObjectMapper json, Progress progress) {
    this.routes = routes;
    this.json = json;
    this.writer = json.writerFor(Measurement.class);
    this.progress = progress;
  }

  @Override
  public void init(ProcessorContext<String, byte[]> context) {
    this.context = context;
    this.store = context.getStateStore(STORE);
  }

  @Override
  public void process(Record<byte[], byte[]> record) {
    progress.firstRecordMs.compareAndSet(0, System.currentTimeMillis());
    progress.records.incrementAndGet();
    RecordMetadata meta = context.recordMetadata().orElseThrow();
    JsonNode value = parse(record.value());
    if (value == null) {
      progress.unreadable.incrementAndGet();
      return;
    }
    Source source = new Source(meta.topic(), meta.partition(), meta.offset());
    for (Route route : routes.getOrDefault(meta.topic(), List.of())) {
      join(route, value, source);
    }
  }

  private JsonNode parse(byte[] raw) {
    if (raw == null) {
      return null;
    }
    try {
      JsonNode v = json.readTree(raw);
      return v != null && v.isObject() ? v : null;
    } catch (IOException e) {
      return null;
    }
  }

  private void join(Route route, JsonNode value, Source source) {
    if (!route.filter().stream().allMatch(c -> c.matches(value))) {
      return;
    }
    JsonNode key = Flows.at(value, route.keyPath());
    JsonNode id = value.get("event_id");
    long at = Flows.epochMs(Flows.at(value, route.timePath()));
    if (key == null || !key.isTextual() || id == null || !id.isTextual() || at < 0) {
      progress.unreadable.incrementAndGet();
      return;
    }
    String storeKey = route.flow() + ":" + key.asText();
    Side side = new Side(route.start(), id.asText(), at, source);
    byte[] stored = store.get(storeKey);
    if (stored == null) {
      store.put(storeKey, SideCodec.encode(side));
      return;
    }
    Side first = SideCodec.decode(stored);
    if (first.start() == side.start()) {
      return; // a repeated side: the first one counts
    }
    Side start = side.start() ? side : first;
    Side end = side.start() ? first : side;
    emit(Measurement.of(route.flow(), key.asText(), start, end, route.targetMs(), side.start()));
    store.delete(storeKey);
  }

  private void emit(Measurement m) {
    byte[] out;
    try {
      out = writer.writeValueAsBytes(m);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("cannot encode a measurement", e);
    }
    context.forward(new Record<>(m.flow() + ":" + m.key(), out, System.currentTimeMillis()));
    progress.emitted.incrementAndGet();
  }
}
