import { useEffect, useState } from 'preact/hooks';
import { ApiError, SESSION_ENDED, clearToken, getToken, gql } from './api';
import { Link, navigate, useUrl } from './router';
import { SignIn } from './pages/signin';
import { Dashboard } from './pages/dashboard';
import { Recordings } from './pages/recordings';
import { RecordingPage } from './pages/recording';
import { Live } from './pages/live';
import { Servers } from './pages/servers';
import { Policies } from './pages/policies';
import { Access } from './pages/access';
import { Audit } from './pages/audit';

export type Role = 'ADMIN' | 'PRIVILEGED_PLAYER' | 'AUDITOR' | 'VIEWER' | 'AGENT';
export type Me = { name: string; role: Role; siteIds: string[] };

type Page = { path: string; name: string; roles: Role[] };

/** The pages of the navigation bar and the roles that may use them. */
export const PAGES: Page[] = [
  { path: '/', name: 'Dashboard', roles: ['ADMIN', 'PRIVILEGED_PLAYER', 'AUDITOR', 'VIEWER'] },
  { path: '/recordings', name: 'Recordings', roles: ['ADMIN', 'PRIVILEGED_PLAYER', 'AUDITOR'] },
  { path: '/live', name: 'Live', roles: ['ADMIN', 'PRIVILEGED_PLAYER', 'AUDITOR'] },
  { path: '/servers', name: 'Servers', roles: ['ADMIN', 'PRIVILEGED_PLAYER', 'AUDITOR', 'VIEWER'] },
  { path: '/policies', name: 'Policies', roles: ['ADMIN', 'AUDITOR'] },
  { path: '/access', name: 'Access', roles: ['ADMIN', 'AUDITOR'] },
  { path: '/audit', name: 'Audit', roles: ['ADMIN', 'AUDITOR'] },
];

let returnTo: string | null = null;

/** What the sign-in page says when the token stopped working meanwhile. */
export const SESSION_ENDED_NOTE = 'Your session ended. Sign in again.';

export function App() {
  const url = useUrl();
  const [me, setMe] = useState<Me | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [ended, setEnded] = useState(false);
  const token = getToken();

  // A GraphQL answer said UNAUTHENTICATED (the token expired or was
  // revoked): the token is gone; sign in again, then back to this page.
  useEffect(() => {
    const onEnded = () => {
      if (location.pathname !== '/signin') returnTo = location.pathname + location.search;
      setEnded(true);
      setMe(null);
      navigate('/signin', true);
    };
    addEventListener(SESSION_ENDED, onEnded);
    return () => removeEventListener(SESSION_ENDED, onEnded);
  }, []);

  useEffect(() => {
    if (!token) {
      setMe(null);
      return;
    }
    gql<{ me: Me }>('{ me { name role siteIds } }').then(
      (data) => {
        setError(null);
        setMe(data.me);
      },
      (e: ApiError) => {
        // A token that no longer works: sign in again.
        clearToken();
        if (e.code !== 'UNAUTHENTICATED') setError(e);
        setMe(null);
        navigate('/signin', true);
      },
    );
  }, [token]);

  const path = url.pathname;
  // A shared link opened signed out: back there after signing in.
  if (!token && path !== '/signin') returnTo = path + url.search;
  if (!token || path === '/signin') {
    if (token && path === '/signin' && me) {
      navigate('/', true);
      return null;
    }
    document.title = 'Sign in · srs';
    return (
      <SignIn
        error={error}
        note={ended ? SESSION_ENDED_NOTE : null}
        onSignedIn={(who) => {
          setMe(who);
          setError(null);
          setEnded(false);
          const next = returnTo ?? '/';
          returnTo = null;
          navigate(next, true);
        }}
      />
    );
  }
  if (!me) return <p role="status" class="muted pad">Signing in…</p>;

  const allowed = PAGES.filter((p) => p.roles.includes(me.role));
  const recordingId = /^\/recordings\/([^/]+)$/.exec(path)?.[1];
  const current = recordingId ? '/recordings' : path;
  const page = PAGES.find((p) => p.path === current);
  let body;
  if (!page) body = <NotFound />;
  else if (!page.roles.includes(me.role)) body = <Refused page={page.name} role={me.role} />;
  else if (recordingId) body = <RecordingPage id={decodeURIComponent(recordingId)} me={me} />;
  else
    body = {
      '/': <Dashboard />,
      '/recordings': <Recordings />,
      '/live': <Live />,
      '/servers': <Servers me={me} />,
      '/policies': <Policies me={me} />,
      '/access': <Access me={me} />,
      '/audit': <Audit me={me} />,
    }[page.path];

  document.title = `${recordingId ? 'Recording' : page?.name ?? 'Not found'} · srs`;
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">srs</span>
        <nav aria-label="Main">
          <ul>
            {allowed.map((p) => (
              <li key={p.path}>
                <Link href={p.path} aria-current={p.path === current ? 'page' : undefined}>
                  {p.name}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who">
          {me.name} <span class="role">{me.role}</span>
        </span>
        <button
          type="button"
          class="secondary"
          onClick={() => {
            clearToken();
            setEnded(false);
            setMe(null);
            navigate('/signin');
          }}
        >
          Sign out
        </button>
      </header>
      <main id="main">{body}</main>
    </>
  );
}

function NotFound() {
  return (
    <>
      <h1>Not found</h1>
      <p>There is no such page. <Link href="/">Back to the dashboard</Link></p>
    </>
  );
}

function Refused(props: { page: string; role: string }) {
  return (
    <>
      <h1>{props.page}</h1>
      <p role="alert">The {props.role} role may not use this page.</p>
    </>
  );
}
