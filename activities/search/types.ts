/** The one interface every search backend implements (text and image search). */

/** One text result. `text` is the whole body as the backend gave it (cut when formatted). */
export interface TextHit {
  id: string;
  title: string;
  text: string;
  /** Backend score when it gives one (BM25, cosine, rank-based otherwise). */
  score: number;
  url?: string;
}

/** Where an image result's bytes are: a local file (embedded corpus) or a URL (web backends). */
export type ImageSource = { kind: 'file'; path: string } | { kind: 'url'; url: string };

/** One image result, before download and resizing. */
export interface ImageHit {
  id: string;
  title: string;
  source: ImageSource;
  score: number;
}

export const BackendNames = ['local', 'serper', 'duckduckgo', 'retrieval', 'searxng'] as const;
export type BackendName = (typeof BackendNames)[number];

export interface SearchCallOptions {
  signal?: AbortSignal;
}

export interface SearchBackend {
  readonly name: BackendName;
  /** True when each call costs money (hosted APIs): counted per run. */
  readonly paid: boolean;
  searchText(query: string, topk: number, options?: SearchCallOptions): Promise<TextHit[]>;
  /**
   * Image candidates, best first. May return more than `topk` (the reference asks web backends
   * for topk + 5) because some URLs turn out broken when downloaded.
   */
  searchImages(query: string, topk: number, options?: SearchCallOptions): Promise<ImageHit[]>;
}
