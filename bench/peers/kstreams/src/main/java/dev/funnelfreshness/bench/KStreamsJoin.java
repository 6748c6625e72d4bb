package dev.funnelfreshness.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.funnelfreshness.bench.Flows.Route;
import dev.funnelfreshness.bench.JoinProcessor.Progress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.state.Stores;

/**
 * The (k) contender of bench/throughput.py: one JVM runs the join once per pass named on the
 * command line ({@code cold,warm}), each pass a fresh application ({@code <app id>-<pass>}:
 * its own consumer group, so it reads every input topic from the beginning, its own state
 * directory and changelog) writing to {@code <app id>-<pass>-measurements}. The first pass
 * runs in a fresh JVM (cold); a later pass runs after it in the same JVM, so the JIT has
 * compiled the hot paths (warm). Kafka Streams defaults otherwise: at-least-once, one stream
 * thread, commit every 30 s; a pass ends once it has emitted {@code --expected} measurements
 * and {@link KafkaStreams#close} has flushed and committed.
 *
 * <pre>java -jar kstreams-join.jar BOOTSTRAP APP_ID STATE_DIR FLOWS_JSON EXPECTED PASSES</pre>
 *
 * <p>After each pass it prints one line {@code KSTREAMS_PASS {json}} (first record's wall
 * clock, emitted count, records read, unreadable records) for the bench to read.
 */
public final class KStreamsJoin {
  private static final ObjectMapper JSON = new ObjectMapper();

  private KStreamsJoin() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 6) {
      System.err.println("usage: BOOTSTRAP APP_ID STATE_DIR FLOWS_JSON EXPECTED PASSES");
      System.exit(64);
    }
    Map<String, List<Route>> routes = Flows.load(Path.of(args[3]), JSON);
    long expected = Long.parseLong(args[4]);
    for (String pass : args[5].split(",")) {
      String appId = args[1] + "-" + pass;
      ObjectNode line = runPass(args[0], appId, Path.of(args[2], pass), routes, expected);
      line.put("pass", pass);
      System.out.println("KSTREAMS_PASS " + JSON.writeValueAsString(line));
      System.out.flush();
    }
  }

  static String outputTopic(String appId) {
    return appId + "-measurements";
  }

  private static ObjectNode runPass(String bootstrap, String appId, Path stateDir,
      Map<String, List<Route>> routes, long expected) throws InterruptedException {
    Progress progress = new Progress();
    KafkaStreams streams = new KafkaStreams(topology(routes, outputTopic(appId), progress),
        config(bootstrap, appId, stateDir));
    streams.setUncaughtExceptionHandler(e -> {
      e.printStackTrace();
      return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    streams.start();
    while (progress.emitted.get() < expected) {
      KafkaStreams.State state = streams.state();
      if (state == KafkaStreams.State.ERROR || state == KafkaStreams.State.NOT_RUNNING
          || state == KafkaStreams.State.PENDING_SHUTDOWN) {
        System.err.println("kafka streams stopped early: " + state);
        System.exit(2);
      }
      Thread.sleep(10);
    }
    long doneMs = System.currentTimeMillis();
    streams.close(Duration.ofSeconds(60));
    ObjectNode line = JSON.createObjectNode();
    line.put("app_id", appId);
    line.put("output_topic", outputTopic(appId));
    line.put("first_record_ms", progress.firstRecordMs.get());
    line.put("last_emitted_seen_ms", doneMs);
    line.put("closed_ms", System.currentTimeMillis());
    line.put("records", progress.records.get());
    line.put("emitted", progress.emitted.get());
    line.put("unreadable", progress.unreadable.get());
    return line;
  }

  /** Source over every input topic, the join with its one store, the measurements sink. */
  private static Topology topology(Map<String, List<Route>> routes, String output,
      Progress progress) {
    Topology t = new Topology();
    t.addSource("inputs", Serdes.ByteArray().deserializer(), Serdes.ByteArray().deserializer(),
        routes.keySet().stream().sorted().toArray(String[]::new));
    t.addProcessor("join", () -> new JoinProcessor(routes, JSON, progress), "inputs");
    t.addStateStore(Stores.keyValueStoreBuilder(
        Stores.persistentKeyValueStore(JoinProcessor.STORE), Serdes.String(),
        Serdes.ByteArray()), "join");
    t.addSink("measurements", output, Serdes.String().serializer(),
        Serdes.ByteArray().serializer(), "join");
    return t;
  }

  /** Kafka Streams defaults but for what a run must name. */
  private static Properties config(String bootstrap, String appId, Path stateDir) {
    Map<String, Object> c = new HashMap<>();
    c.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    c.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    c.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
    Properties p = new Properties();
    p.putAll(c);
    return p;
  }
}
