import { useState } from 'preact/hooks';
import { ApiError, gql, setToken } from '../api';
import type { Me } from '../app';
import { ErrorNote } from '../util';

export function SignIn(props: { error: ApiError | null; note: string | null; onSignedIn: (me: Me) => void }) {
  const [token, setValue] = useState('');
  const [error, setError] = useState<ApiError | null>(props.error);
  const [busy, setBusy] = useState(false);
  return (
    <main id="main" class="signin">
      <h1>Sign in to srs</h1>
      {props.note && <p role="alert" class="note">{props.note}</p>}
      <p class="muted">Paste an access token (an ADMIN's first one is in the data directory's <code>admin.token</code>).</p>
      <form
        onSubmit={async (event) => {
          event.preventDefault();
          const secret = token.trim();
          if (!secret) {
            setError(new ApiError('Enter a token.', 'VALIDATION'));
            return;
          }
          setBusy(true);
          try {
            const data = await gql<{ me: Me }>('{ me { name role siteIds } }', {}, secret);
            if (data.me.role === 'AGENT') throw new ApiError('An AGENT token is a server credential: the console needs a person\'s token.', 'FORBIDDEN');
            setToken(secret);
            setValue('');
            props.onSignedIn(data.me);
          } catch (e) {
            setError(e as ApiError);
          } finally {
            setBusy(false);
          }
        }}
      >
        <label for="token">Token</label>
        <input
          id="token"
          type="password"
          autocomplete="off"
          value={token}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
        />
        <button type="submit" disabled={busy}>Sign in</button>
      </form>
      <ErrorNote error={error} />
    </main>
  );
}
