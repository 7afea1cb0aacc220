// Starts GraphiQL against this gateway. Served from the binary with the
// libraries beside it: nothing is loaded from another origin (a strict
// Content-Security-Policy allows only 'self').
//
// A token after `#token=` in the address (scripts/demo prints such a link)
// is put into the Authorization header; the fragment never leaves the
// browser, so the token reaches no log.
(function () {
  var token = new URLSearchParams(window.location.hash.slice(1)).get('token');
  var headers = {
    Authorization: 'Bearer ' + (token || '<a token: kasvu-gateway token --sub S --org O --roles viewer>'),
  };
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: GraphiQL.createFetcher({ url: '/graphql' }),
      defaultHeaders: JSON.stringify(headers, null, 2),
      // Tokens are not kept in the browser's storage.
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: 'headers',
    }),
  );
})();
