/** The one interface every search backend implements (text and image search). */

/** One text result. `text` is the whole body as the backend gave it (cut when formatted). */
export interface TextHit {
  id: string;
  title: string;
  text: string;
  /** Backend score when it gives one (BM25, cosine, rank-based otherwise). */
  score: number;
  url?: string;
  /** Set by page-fetch mode (Serper `fetchPages`): what the reference reads from the result's page. */
  page?: PageContext;
}

/** A result page as the page-fetch observation shows it (spec §7.2). */
export interface PageContext {
  /** The URL's host. */
  siteName: string;
  /** The result's date, when the search engine gives one. */
  date: string;
  /** The page text around the snippet, or the snippet itself when the page could not be fetched. */
  context: string;
  /** False when the page could not be fetched or had no text (the context is then the snippet). */
  fetched: boolean;
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
