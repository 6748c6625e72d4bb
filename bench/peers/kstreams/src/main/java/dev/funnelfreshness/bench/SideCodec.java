package dev.funnelfreshness.bench;

import dev.funnelfreshness.bench.Measurement.Side;
import dev.funnelfreshness.bench.Measurement.Source;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * The store's value: the side seen first, in a compact binary layout
 * ({@code kind, occurred_at, partition, offset, len+event_id, len+topic}), so a RocksDB
 * value and its changelog record stay small and need no JSON encode.
 */
final class SideCodec {
  private SideCodec() {}

  static byte[] encode(Side s) {
    byte[] id = s.eventId().getBytes(StandardCharsets.UTF_8);
    byte[] topic = s.source().topic().getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(1 + 8 + 4 + 8 + 4 + id.length + 4 + topic.length);
    b.put((byte) (s.start() ? 'S' : 'E')).putLong(s.occurredAt());
    b.putInt(s.source().partition()).putLong(s.source().offset());
    b.putInt(id.length).put(id).putInt(topic.length).put(topic);
    return b.array();
  }

  static Side decode(byte[] raw) {
    ByteBuffer b = ByteBuffer.wrap(raw);
    boolean start = b.get() == 'S';
    long at = b.getLong();
    int partition = b.getInt();
    long offset = b.getLong();
    String id = text(b);
    String topic = text(b);
    return new Side(start, id, at, new Source(topic, partition, offset));
  }

  private static String text(ByteBuffer b) {
    byte[] out = new byte[b.getInt()];
    b.get(out);
    return new String(out, StandardCharsets.UTF_8);
  }
}
