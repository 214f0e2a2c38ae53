import { describe, expect, it } from 'vitest';
import { emfDocument } from '#core/emf.ts';
import { emfProblems } from '#test/helpers/emf.ts';

describe('embedded metric format', () => {
  it('our documents pass the specification checks', () => {
    const doc = emfDocument({ Source: 'orders-db', Slot: 'pgrelay_orders' }, [{ name: 'ChangesStreamed', value: 12, unit: 'Count' }], 1_790_000_000_000);
    expect(emfProblems(doc)).toEqual([]);
    expect(doc).toMatchObject({ Source: 'orders-db', Slot: 'pgrelay_orders', ChangesStreamed: 12 });
  });

  it('the checker rejects what CloudWatch would reject', () => {
    const good = emfDocument({ Source: 's' }, [{ name: 'M', value: 1, unit: 'Count' }], 1_790_000_000_000);
    expect(emfProblems({ ...good, _aws: { ...(good._aws as object), Timestamp: '2026-01-01' } })).toContain('_aws.Timestamp must be epoch milliseconds');
    expect(emfProblems({ ...good, M: 'one' })).toContain('metric M must be a root number');
    expect(emfProblems({ ...good, Source: 3 })).toContain('dimension Source must be a root string member');
    const badUnit = emfDocument({ Source: 's' }, [{ name: 'M', value: 1, unit: 'Counts' as never }], 1_790_000_000_000);
    expect(emfProblems(badUnit)).toContain('metric M: unit Counts not allowed');
    expect(emfProblems({ M: 1 })).toEqual(['no _aws member']);
  });
});
