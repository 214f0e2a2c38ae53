/**
 * What `npm start` prints: graph node events one line each (snapshot rows are counted instead,
 * see load-progress.ts), a line per table load, coloured on a terminal, and a status line.
 */
import type { BootstrapLoad, GraphNodeEvent } from '#core/change-event.ts';

const ANSI = { dim: '\x1b[2m', reset: '\x1b[0m', green: '\x1b[32m', yellow: '\x1b[33m', red: '\x1b[31m', magenta: '\x1b[35m', cyan: '\x1b[36m', bold: '\x1b[1m' };

/** The terminal: one line per event, and a live status line when it is a terminal. */
export class Screen {
  private status = '';
  readonly tty: boolean;
  constructor(private readonly out: NodeJS.WriteStream) {
    this.tty = Boolean(out.isTTY) && !process.env.NO_COLOR;
  }
  private paint(color: keyof typeof ANSI, text: string): string {
    return this.tty ? `${ANSI[color]}${text}${ANSI.reset}` : text;
  }
  line(text: string): void {
    if (this.tty && this.status) this.out.write('\r\x1b[2K');
    this.out.write(`${text}\n`);
    if (this.tty && this.status) this.out.write(this.status);
  }
  setStatus(text: string): void {
    if (this.tty) {
      this.status = this.paint('dim', text);
      this.out.write(`\r\x1b[2K${this.status}`);
    } else {
      this.out.write(`status: ${text}\n`);
    }
  }
  clearStatus(): void {
    if (this.tty && this.status) this.out.write('\r\x1b[2K');
    this.status = '';
  }
  /** A table's bootstrap began: `snapshot ▶ orders (initial)`. */
  snapshotStarted(label: string, reason: BootstrapLoad['reason']): void {
    this.line(`${this.paint('cyan', 'snapshot ▶')} ${this.paint('bold', label)} ${this.paint('dim', `(${reason === 'gap' ? 'gap repair' : reason})`)}`);
  }
  /** A table's bootstrap ended: `snapshot ✓ orders: 5,000 rows in 2.1 s`, or ✗ and how it ended. */
  snapshotCompleted(label: string, outcome: NonNullable<BootstrapLoad['outcome']>, rows: number, seconds: number): void {
    const rowsText = `${rows.toLocaleString('en-US')} row${rows === 1 ? '' : 's'}`;
    if (outcome === 'complete') this.line(`${this.paint('cyan', 'snapshot ✓')} ${this.paint('bold', label)}: ${rowsText} ${this.paint('dim', `in ${seconds.toFixed(1)} s`)}`);
    else this.line(`${this.paint('red', 'snapshot ✗')} ${this.paint('bold', label)}: ${outcome} after ${rowsText}`);
  }
  loadSummary(text: string): void {
    this.line(this.paint('cyan', text));
  }
  event(e: GraphNodeEvent): void {
    if (e.type === 'message.emitted') {
      const { prefix, content, encoding, transactional } = e.message;
      this.line(`${this.paint('cyan', e.type.padEnd(15))} ${this.paint('bold', prefix)}  ${this.paint('dim', `${transactional ? '' : '(non-transactional) '}${encoding === 'utf8' ? content : `base64 ${content}`}`)}`);
      return;
    }
    const color = e.type === 'node.inserted' ? 'green' : e.type === 'node.updated' ? 'yellow' : e.type === 'node.deleted' ? 'red' : 'magenta';
    let props: string;
    if (e.type === 'node.updated' && e.previous && e.changed) {
      props = e.changed.map((k) => `${k}: ${JSON.stringify(e.previous?.[k])} → ${JSON.stringify(e.node.properties[k])}`).join(', ') || '(no change)';
    } else if (e.type === 'label.truncated') {
      props = 'all nodes removed';
    } else if (e.type === 'label.gap') {
      props = `changes lost after ${e.gap?.afterLsn ?? '?'} before ${e.gap?.untilLsn ?? '?'} (${e.gap?.reason ?? '?'}; ${e.gap?.repair ?? '?'})`;
    } else {
      props = Object.entries(e.node.properties).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(', ');
    }
    const type = e.type.padEnd(15);
    this.line(`${this.paint(color, type)} ${this.paint('bold', `${e.node.label}`)} ${e.node.id ?? ''}  ${this.paint('dim', props)}`);
  }
}

