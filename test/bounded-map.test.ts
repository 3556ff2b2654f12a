import test from 'ava';

import { BoundedMap } from '../src/bounded-map.ts';

test('a bounded map keeps at most its maximum, dropping the oldest entry; setting a key it has drops nothing', (t) => {
  const map = new BoundedMap<string, number>(2);
  map.set('a', 1).set('b', 2);
  map.set('b', 3);
  t.deepEqual([...map], [['a', 1], ['b', 3]]);
  map.set('c', 4);
  t.deepEqual([...map], [['b', 3], ['c', 4]]);
});
