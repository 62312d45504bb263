/* Server-sent events read from a fetch() response (EventSource cannot POST a question).
 *
 * The server writes each event as one `event: NAME` line and one `data: JSON` line, then a blank line
 * (`sse_event` in search/apis.py), so that is all this parses. */

export async function* eventsRead(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let searched = 0; // where the next search for a frame end starts, so a long event is scanned once
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n", searched)) >= 0) {
      const event = frameParse(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      searched = 0;
      if (event) yield event;
    }
    searched = Math.max(0, buffer.length - 1);
  }
}

function frameParse(frame) {
  let name = "message";
  let data = null;
  for (const line of frame.split("\n")) {
    if (line.startsWith("event: ")) name = line.slice("event: ".length);
    else if (line.startsWith("data: ")) data = JSON.parse(line.slice("data: ".length));
  }
  return data === null ? null : { name, data };
}
