package dev.funnelfreshness.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The flows the join knows, read from the JSON file the bench writes from the monitor's own
 * flow config (so the four default flows have one home: streams/flows/default.yaml).
 *
 * <p>What is honoured: key and time paths, the completion filter's {@code ==}, {@code !=} and
 * {@code in} clauses (all must hold), RFC 3339 or epoch-ms times. What is not: JSON Schema
 * validation, schema defaults (a completion without {@code stage} does not match
 * {@code stage == "accepted"} here; the bench's records always carry it), quarantine.
 */
final class Flows {
  /** One side of one flow that a record of a topic may be. */
  record Route(String flow, boolean start, String[] keyPath, String[] timePath,
      List<Clause> filter, long targetMs) {}

  /** {@code path op value} on a completion record. */
  record Clause(String[] path, String op, JsonNode value) {
    boolean matches(JsonNode record) {
      JsonNode got = at(record, path);
      if (got == null) {
        return false;
      }
      return switch (op) {
        case "==" -> got.equals(value);
        case "!=" -> !got.equals(value);
        case "in" -> contains(value, got);
        default -> throw new IllegalArgumentException("unknown filter op " + op);
      };
    }

    private static boolean contains(JsonNode list, JsonNode got) {
      for (JsonNode v : list) {
        if (v.equals(got)) {
          return true;
        }
      }
      return false;
    }
  }

  private Flows() {}

  /** Routes by input topic, from {@code [{"name", "start_topic", ..., "filter": [...]}]}. */
  static Map<String, List<Route>> load(Path file, ObjectMapper json) throws IOException {
    Map<String, List<Route>> byTopic = new HashMap<>();
    for (JsonNode f : json.readTree(file.toFile())) {
      String name = f.get("name").asText();
      long target = f.get("target_ms").asLong();
      List<Clause> filter = new ArrayList<>();
      for (JsonNode c : f.get("filter")) {
        filter.add(new Clause(strings(c.get("path")), c.get("op").asText(), c.get("value")));
      }
      add(byTopic, f.get("start_topic").asText(), new Route(name, true,
          strings(f.get("start_key")), strings(f.get("start_time")), List.of(), target));
      add(byTopic, f.get("end_topic").asText(), new Route(name, false,
          strings(f.get("end_key")), strings(f.get("end_time")), filter, target));
    }
    return byTopic;
  }

  private static void add(Map<String, List<Route>> byTopic, String topic, Route route) {
    byTopic.computeIfAbsent(topic, t -> new ArrayList<>()).add(route);
  }

  private static String[] strings(JsonNode list) {
    String[] out = new String[list.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = list.get(i).asText();
    }
    return out;
  }

  /** The node at {@code path}, or null when a step is missing or not an object. */
  static JsonNode at(JsonNode node, String[] path) {
    JsonNode cur = node;
    for (String part : path) {
      if (cur == null || !cur.isObject()) {
        return null;
      }
      cur = cur.get(part);
    }
    return cur;
  }

  /** Epoch ms of an integer or an RFC 3339 text; -1 when it is neither. */
  static long epochMs(JsonNode t) {
    if (t == null) {
      return -1;
    }
    if (t.isIntegralNumber()) {
      return t.asLong();
    }
    if (t.isTextual()) {
      try {
        return OffsetDateTime.parse(t.asText()).toInstant().toEpochMilli();
      } catch (RuntimeException e) {
        return -1;
      }
    }
    return -1;
  }
}
