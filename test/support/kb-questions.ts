// The shared KB's questions: every text_search query the Seg-ReSearch policy issued in the real
// step records (../shared/data/segresearch_step_records, parsed with the rollout's own action
// parser and sanitised as the search service does), plus the facts local-corpus.test.ts looks up.
import { readFileSync } from 'node:fs';
import { parseSearchAction } from '../../core/protocol/actions.js';
import { sanitiseQuery } from '../../activities/search/service.js';
import { sharedData } from './paths.js';

/** Questions about facts in the KB and the id of the passage holding each answer. */
export const KB_FACTS: [string, string][] = [
  ['Who won the Best Pop Solo Performance award at the 61st Grammy Awards?', '2'],
  ['Roger Federer International Tennis Hall of Fame class', '1'],
  ['Which spokesperson did Trick-or-Treat for UNICEF choose in 2014?', '0'],
  ['Where does Diana Prince work in Wonder Woman 1984?', '4'],
  ['60th Annual Grammy Awards most nominations', '3'],
];

/** The distinct text_search queries of the step records, then the facts' questions. */
export function kbQuestions(): string[] {
  const out = new Set<string>();
  const file = sharedData('segresearch_step_records', 'step1.jsonl');
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const { output } = JSON.parse(line) as { output: string };
    // Each turn's action ends at its </search>; the parser reads the last block of what it is given.
    for (const turn of output.split('</search>').slice(0, -1)) {
      const action = parseSearchAction(`${turn}</search>`);
      if (action?.kind === 'call' && action.tool === 'text_search') {
        const q = sanitiseQuery(action.query);
        if (q !== '') out.add(q);
      }
    }
  }
  for (const [q] of KB_FACTS) out.add(q);
  return [...out];
}
